package itest_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// batchAdds returns n lines of rtm route add, each a different /32.
func batchAdds(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "route add 10.%d.%d.%d/32 via 192.0.2.1 dev eth0\n", i>>16&255, i>>8&255, i&255)
	}
	return b.String()
}

// routeCount returns how many routes rtm route show table all prints.
func (d *daemon) routeCount() int {
	d.t.Helper()
	return strings.Count(d.mustRtm("-o", "route", "show", "table", "all"), "\n")
}

// TestBatch100k runs 100,000 single route adds through rtm -batch -, one
// process and one connection, and checks that every one is applied.
func TestBatch100k(t *testing.T) {
	d := startRtmd(t)
	const n = 100_000
	start := time.Now()
	out, errs, code := d.rtm(batchAdds(n), "-batch", "-")
	took := time.Since(start)
	if code != 0 || out != "" || errs != "" {
		t.Fatalf("rtm -batch: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	t.Logf("rtm -batch: %d route adds in %v: %.0f lines/s", n, took.Round(time.Millisecond), n/took.Seconds())
	if got := d.routeCount(); got != n {
		t.Errorf("after the batch: %d routes, want %d", got, n)
	}
	if st := d.status(); st.Seq != n {
		t.Errorf("after the batch: seq %d, want %d", st.Seq, n)
	}
}

// TestBatchErrors checks that a failing line is reported with its number
// (blank lines and comments counted), that nothing after it is applied,
// and that with -force the rest is applied and rtm exits 1.
func TestBatchErrors(t *testing.T) {
	d := startRtmd(t)
	lines := strings.SplitAfter(batchAdds(10_000), "\n")
	// Line 7,003 adds again what line 3 added: rtmd refuses it.
	head := "# a batch\n\n" + strings.Join(lines[:7000], "")
	bad := lines[0]
	tail := strings.Join(lines[7000:], "")
	out, errs, code := d.rtm(head+bad+tail, "-batch", "-")
	if code != 1 || !strings.HasPrefix(errs, "rtm: line 7003: rtmd: route 10.0.0.0/32 table main exists") {
		t.Fatalf("rtm -batch: exit %d, stderr %q; want exit 1 and the error on line 7003", code, errs)
	}
	if got := d.routeCount(); got != 7000 {
		t.Errorf("after the failed batch: %d routes, want the 7000 before the bad line", got)
	}

	// A line that does not parse stops the batch as well, before the
	// request.
	d.mustRtm("route", "flush", "table", "all")
	_, errs, code = d.rtm("route add 10.1.0.0/16 dev eth0\nroute add 10.2.0.0/16 frob 1\nroute add 10.3.0.0/16 dev eth0\n", "-batch", "-")
	if code != 1 || !strings.Contains(errs, `rtm: line 2: route add: invalid keyword "frob"`) {
		t.Errorf("rtm -batch with a bad word: exit %d, stderr %q", code, errs)
	}
	if got := d.mustRtm("-o", "route", "show"); got != "10.1.0.0/16 dev eth0 proto static\n" {
		t.Errorf("after the bad word: %q", got)
	}

	// -force: every other line is applied; shows write to stdout in order.
	d.mustRtm("route", "flush", "table", "all")
	out, errs, code = d.rtm(head+bad+tail+"route show 10.0.39.15\nroute del 10.0.39.15\nroute del 10.0.39.15\n", "-batch", "-", "-force")
	if code != 1 {
		t.Errorf("rtm -batch -force: exit %d, want 1", code)
	}
	if want := "rtm: line 7003: rtmd: route 10.0.0.0/32 table main exists"; !strings.Contains(errs, want) ||
		!strings.Contains(errs, "rtm: line 10006: rtmd: no route 10.0.39.15/32 table main matches") ||
		!strings.Contains(errs, "rtm: 2 of 10004 commands failed") {
		t.Errorf("rtm -batch -force: stderr %q", errs)
	}
	if out != "10.0.39.15 via 192.0.2.1 dev eth0 proto static\n" {
		t.Errorf("rtm -batch -force: stdout %q", out)
	}
	if got := d.routeCount(); got != 9999 {
		t.Errorf("after -force: %d routes, want 9999", got)
	}

	// A file, with the global flags before -batch applying to every line.
	f := shortDir(t) + "/batch"
	os.WriteFile(f, []byte("route add default dev eth0\nroute show default\n"), 0o644)
	if out := d.mustRtm("-6", "-batch", f); out != "::/0 dev eth0 proto static\n" {
		t.Errorf("rtm -6 -batch FILE: %q", out)
	}
	if _, errs, code := d.rtm("", "-batch", f, "route", "show"); code != 2 || !strings.Contains(errs, "unexpected command") {
		t.Errorf("rtm -batch FILE route show: exit %d, %q", code, errs)
	}
	if _, errs, code := d.rtm("monitor\n", "-batch", "-"); code != 1 || !strings.Contains(errs, "line 1: monitor does not end") {
		t.Errorf("rtm -batch with monitor: exit %d, %q", code, errs)
	}
}

// ipShow is what ip route show prints: words rtm does not keep (scope,
// linkdown, onlink, pref), proto kernel, and multipath routes over several
// lines, with ip's trailing spaces.
const ipShow = `default via 192.0.2.1 dev eth0 proto dhcp src 192.0.2.9 metric 100 
10.1.0.0/16 dev eth1 proto kernel scope link src 10.1.0.1 linkdown 
10.2.0.0/16 proto bgp metric 20 
	nexthop via 192.0.2.1 dev eth0 weight 1 
	nexthop via 192.0.2.2 dev eth0 weight 2 onlink 
blackhole 10.3.0.0/16 proto static 
2001:db8::/64 dev eth0 proto kernel metric 256 pref medium
`

// TestLoadIPShow loads ip route show's text and prints it back.
func TestLoadIPShow(t *testing.T) {
	d := startRtmd(t)
	_, errs, code := d.rtm(ipShow, "route", "load", "-")
	if code != 0 || errs != "rtm: ignored 4 words (linkdown, onlink, pref, scope) not kept by rtm\n" {
		t.Fatalf("route load: exit %d, stderr %q", code, errs)
	}
	want := `default via 192.0.2.1 dev eth0 proto dhcp src 192.0.2.9 metric 100
10.1.0.0/16 dev eth1 proto kernel src 10.1.0.1
10.2.0.0/16 proto bgp metric 20
	nexthop via 192.0.2.1 dev eth0 weight 1
	nexthop via 192.0.2.2 dev eth0 weight 2
blackhole 10.3.0.0/16 proto static
2001:db8::/64 dev eth0 proto kernel metric 256
`
	if got := d.mustRtm("route", "show"); got != want {
		t.Errorf("route show after load:\n%s\nwant\n%s", got, want)
	}
	// A bad line loads nothing and names its line.
	_, errs, code = d.rtm(ipShow+"10.4.0.0/16 via 192.0.2.1 dev eth0 mtu\n", "route", "load", "-")
	if code != 1 || !strings.HasPrefix(errs, "rtm: stdin:8: ") || !strings.Contains(errs, "mtu") {
		t.Errorf("route load with a bad line 8: exit %d, stderr %q", code, errs)
	}
}

// TestFlushSpelt checks that the flush of both tables is never reached by
// abbreviation, and that rtm flush all empties them.
func TestFlushSpelt(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "dev", "eth0")
	d.mustRtm("mac", "add", "02:00:00:00:00:01", "10.0.0.1", "dev", "eth0")
	for _, args := range []string{"flush", "f", "fl", "f all", "route f table all", "route flush"} {
		_, errs, code := d.rtm("", strings.Fields(args)...)
		if code != 2 || !strings.Contains(errs, "spel") && !strings.Contains(errs, "SELECTOR") {
			t.Errorf("rtm %s: exit %d, stderr %q; want a refusal that says how to spell it", args, code, errs)
		}
	}
	if got, _ := d.tables(); len(got) != 2 {
		t.Fatalf("a refused flush changed the tables: %q", got)
	}
	if out := d.mustRtm("mac", "show"); out != "02:00:00:00:00:01 10.0.0.1 dev eth0\n" {
		t.Errorf("mac show: %q", out)
	}
	if out := d.mustRtm("mac", "show", "-j"); out != `[{"dst":"10.0.0.1","dev":"eth0","lladdr":"02:00:00:00:00:01"}]`+"\n" {
		t.Errorf("mac show -j: %q", out)
	}
	d.mustRtm("flush", "all")
	if got, _ := d.tables(); len(got) != 0 {
		t.Errorf("after flush all: %q", got)
	}
}

// TestIPBatchRoundTrip gives what rtm -o route show prints to ip -batch in
// a private network namespace, loads what ip route show prints there into
// a second rtmd, and checks that both print the same. (The route
// package's TestIPBatch checks the text forms alone against ip.)
func TestIPBatchRoundTrip(t *testing.T) {
	ip, err := exec.LookPath("ip")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs ip (iproute2) and root for a network namespace")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := "rtm-" + hex.EncodeToString(rnd[:])
	runIP := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(ip, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stdin)
		}
		return string(out)
	}
	runIP("", "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	runIP(`link add d0 type veth peer name d1
link set lo up
link set d0 up
link set d1 up
addr add 10.0.0.2/24 dev d0
addr add 10.1.0.2/24 dev d1
addr add 2001:db8::2/64 dev d0 nodad
addr add 2001:db8:1::2/64 dev d1 nodad
`, "-n", ns, "-batch", "-")

	d := startRtmd(t)
	// IPv6 routes carry a metric: the kernel gives them 1024 otherwise.
	routes := []string{
		"192.0.2.0/24 via 10.0.0.1 dev d0",
		"198.51.100.0/24 dev d0",
		"default via 10.0.0.1 dev d0 metric 10",
		"203.0.113.0/24 via 10.0.0.1 dev d0 metric 100 proto bgp",
		"203.0.115.0/24 via 10.0.0.1 dev d0 table 100",
		"blackhole 172.16.1.0/24",
		"unreachable 172.16.2.0/24 metric 5",
		"prohibit 172.16.3.0/24 proto bgp",
		"172.17.0.0/16 nexthop via 10.0.0.1 dev d0 weight 2 nexthop via 10.1.0.1 dev d1",
		"2001:db8:5::/48 via 2001:db8::1 dev d0 metric 1024",
		"2001:db8:6::/48 dev d1 metric 10 table 7",
		"2001:db8:8::/48 metric 1024 nexthop via 2001:db8::1 dev d0 nexthop via 2001:db8:1::1 dev d1 weight 4",
	}
	var batch strings.Builder
	for _, r := range routes {
		batch.WriteString("route add " + r + "\n")
	}
	d.mustRtmIn(batch.String(), "-batch", "-")
	shown := d.mustRtm("-o", "route", "show", "table", "all")
	if n := strings.Count(shown, "\n"); n != len(routes) {
		t.Fatalf("rtm -o route show: %d lines, want %d:\n%s", n, len(routes), shown)
	}
	var toIP strings.Builder
	for _, l := range strings.SplitAfter(shown, "\n") {
		if l != "" {
			toIP.WriteString("route add " + l)
		}
	}
	runIP(toIP.String(), "-n", ns, "-batch", "-")

	// What ip shows, but for the routes the kernel made itself.
	var back strings.Builder
	var keep bool
	for _, l := range strings.SplitAfter(runIP("", "-n", ns, "route", "show", "table", "all"), "\n") {
		if l == "" {
			continue
		}
		if l[0] != ' ' && l[0] != '\t' {
			keep = !strings.Contains(l, "proto kernel") && !strings.Contains(l, "table local") &&
				!strings.HasPrefix(l, "multicast") && !strings.HasPrefix(l, "local ") && !strings.HasPrefix(l, "broadcast")
		}
		if keep {
			back.WriteString(l)
		}
	}
	d2 := startRtmd(t)
	if _, errs, code := d2.rtm(back.String(), "route", "load", "-"); code != 0 {
		t.Fatalf("route load of ip route show: exit %d: %s\n%s", code, errs, back.String())
	}
	if got := d2.mustRtm("-o", "route", "show", "table", "all"); got != shown {
		t.Errorf("ip route show, loaded back:\n%s\nwant what rtm gave ip:\n%s\nip printed:\n%s", got, shown, back.String())
	}
	if got, want := d2.mustRtm("route", "show", "table", "all"), d.mustRtm("route", "show", "table", "all"); got != want {
		t.Errorf("route show after the round trip:\n%s\nwant\n%s", got, want)
	}
}

// mustRtmIn runs rtm with stdin and fails the test unless it exits 0.
func (d *daemon) mustRtmIn(stdin string, args ...string) string {
	d.t.Helper()
	out, errs, code := d.rtm(stdin, args...)
	if code != 0 {
		d.t.Fatalf("rtm %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// TestBatchForceCountsRefusedRequest: with -force, a request of grouped
// changes that rtmd refuses as a whole (here its staging budget, smaller
// than the request) leaves every line of it unapplied, and rtm must count
// each as failed, not one a request: it said "2 of 5000 commands failed"
// with none applied.
func TestBatchForceCountsRefusedRequest(t *testing.T) {
	d := startRtmd(t, "-max-staged", "20000")
	_, errs, code := d.rtm(batchAdds(5000), "-batch", "-", "-force")
	if code != 1 {
		t.Errorf("rtm -batch -force: exit %d, want 1", code)
	}
	applied := d.routeCount()
	if want := fmt.Sprintf("rtm: %d of 5000 commands failed", 5000-applied); !strings.Contains(errs, want) {
		t.Errorf("rtm -batch -force with %d of 5000 lines applied: stderr %q, want %q", applied, errs, want)
	}
	if !strings.Contains(errs, "rtm: line 1: ") {
		t.Errorf("rtm -batch -force: stderr %q, want the first line of the refused request named", errs)
	}
}

// TestBatchForceAfterTimeout: with -force, a request that gets no reply
// in time (rtmd stopped) is reported, and the batch goes on; rtmd applies
// the request once it runs again. The changes after it must be reported
// as rtmd answers them: they were reported as failed ("protocol error:
// reply to request 2, want 3"), each reading the reply to the one before,
// though rtmd applied every one.
func TestBatchForceAfterTimeout(t *testing.T) {
	d := startRtmd(t)
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "--socket", d.socket, "--timeout", "1s", "-batch", "-", "-force")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb := new(lockedBuffer)
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first line dials; a line that does not parse sends the changes
	// before it.
	fmt.Fprintln(in, "route add 20.0.0.0/8 dev eth0\nbogus")
	waitFor(t, func() bool { return strings.Contains(errb.String(), "line 2:") })
	stopProcess(t, d.cmd.Process)
	fmt.Fprintln(in, "route add 21.0.0.0/8 dev eth0\nbogus")
	waitFor(t, func() bool { return strings.Contains(errb.String(), "line 4:") })
	d.cmd.Process.Signal(syscall.SIGCONT)
	fmt.Fprintln(in, "route add 22.0.0.0/8 dev eth0\nroute add 23.0.0.0/8 dev eth0\nbogus\nroute add 24.0.0.0/8 dev eth0")
	in.Close()
	cmd.Wait()
	errs := errb.String()
	if !strings.Contains(errs, "rtm: line 3: no answer from rtmd") {
		t.Errorf("stderr %q, want line 3's timeout", errs)
	}
	if got := d.routeCount(); got != 5 {
		t.Errorf("%d routes, want 5 (rtmd applies the late request too)", got)
	}
	for _, n := range []string{"5", "6", "8"} {
		if strings.Contains(errs, "rtm: line "+n+":") {
			t.Errorf("line %s, which rtmd applied, reported as failed: stderr %q", n, errs)
		}
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// TestBatchTimeoutNamesLimit: a batch whose first request finds rtmd
// stopped names the --timeout it waited, not "within 0s".
func TestBatchTimeoutNamesLimit(t *testing.T) {
	d := startRtmd(t)
	stopProcess(t, d.cmd.Process)
	defer d.cmd.Process.Signal(syscall.SIGCONT)
	_, errs, code := d.rtm("route add 20.0.0.0/8 dev eth0\n", "--timeout", "300ms", "-batch", "-")
	if code != 1 || !strings.Contains(errs, "no answer from rtmd at "+d.socket+" within 300ms") {
		t.Errorf("rtm -batch with rtmd stopped: exit %d, stderr %q", code, errs)
	}
}

// TestBatchHasNoScans: a route flush scans every route, and a batch
// applies all its entries in one turn of rtmd's loop, so a batch of
// flushes could hold the loop for minutes (one request of 4096 flushes
// over 200,000 routes held it 20 s). A route flush is therefore never a
// batch entry: rtmd refuses one as a protocol error, and rtm -batch sends
// each route flush line as a request of its own, between the grouped
// changes, with its line number kept.
func TestBatchHasNoScans(t *testing.T) {
	d := startRtmd(t)
	p := dialPeer(t, "unix", d.socket)
	sel := wire.AppendSelector(nil, route.Selector{Table: route.TableMain})
	body := binary.LittleEndian.AppendUint32([]byte{0}, 1)
	p.send(wire.AppendRequest(nil, 1, wire.KBatch, wire.AppendBatchEntry(body, wire.KRouteFlush, sel)))
	if typ, msg := p.frame(); typ != wire.TError || !strings.Contains(string(msg), "may not be in a batch") {
		t.Errorf("a batch with a route flush: frame %d %q, want a protocol error", typ, msg)
	}

	in := "route add 10.1.0.0/16 dev eth0\nroute add 10.2.0.0/16 dev eth1\nroute flush dev eth1\n" +
		"route add 10.3.0.0/16 dev eth1\nroute flush dev eth9\nroute add 10.1.0.0/16 dev eth0\n"
	_, errs, code := d.rtm(in, "-batch", "-")
	if code != 1 || !strings.Contains(errs, "line 6:") {
		t.Errorf("rtm -batch: exit %d, stderr %q; want line 6 (an add of an existing route) to fail", code, errs)
	}
	if got := d.mustRtm("route", "show"); got != "10.1.0.0/16 dev eth0 proto static\n10.3.0.0/16 dev eth1 proto static\n" {
		t.Errorf("after the batch: %q", got)
	}
}

// TestConnClosedAfterTimeout: a request that times out leaves its reply to
// come later; the library closes the connection rather than hand that
// reply to the next request.
func TestConnClosedAfterTimeout(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	d.mustRtm("route", "add", "10.0.0.0/8", "dev", "eth0")
	stopProcess(t, d.cmd.Process)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.Get(ctx, 0, netip.MustParseAddr("10.1.1.1"))
	cancel()
	d.cmd.Process.Signal(syscall.SIGCONT)
	if err == nil {
		t.Fatal("Get while rtmd was stopped succeeded")
	}
	_, err = c.Get(context.Background(), 0, netip.MustParseAddr("10.1.1.1"))
	if err == nil || !strings.Contains(err.Error(), "closed after an earlier request failed") {
		t.Errorf("Get after a timed-out one: %v, want the connection closed", err)
	}
}
