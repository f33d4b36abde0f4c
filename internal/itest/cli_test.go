package itest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCLIRoutes(t *testing.T) {
	d := startRtmd(t)
	steps := []struct {
		args     string
		stdin    string
		code     int
		out, err string // substrings; out "=" prefix means exact
	}{
		{args: "route add 10.0.0.7/24 via 10.1.1.1 dev eth0", code: 2, err: `invalid dst "10.0.0.7/24": invalid prefix for given prefix length (host bits set); did you mean 10.0.0.0/24?`},
		{args: "route add 10.0.0.0/24 via 10.1.1.1 dev eth0"},
		{args: "route add 10.0.0.0/24 via 10.1.1.2 dev eth0", code: 1, err: "rtmd: route 10.0.0.0/24 table main exists"},
		{args: "route change 10.0.0.0/24 via 10.1.1.2 dev eth1"},
		{args: "route change 10.9.0.0/24 via 10.1.1.2 dev eth1", code: 1, err: "no route 10.9.0.0/24 table main"},
		{args: "route replace 2001:db8::/32 via fe80::1 dev eth2"},
		{args: "r rep default via 192.0.2.1 dev wan metric 100 scope link", code: 2, err: `route replace: invalid keyword "scope": not kept by rtm`},
		{args: "r rep default via 192.0.2.1 dev wan metric 100"},
		{args: "route add 10.7.0.0/16 dev eth3 proto bgp table 100"},
		{args: "route add unreachable 10.8.0.0/16 table 100 metric 5"},
		{args: "route add 10.9.0.0/16 nexthop via 10.1.1.1 dev eth0 weight 2 nexthop via 10.1.1.2 dev eth1"},
		{args: "route del 10.9.0.0/16 via 10.1.1.3", code: 1, err: "no route 10.9.0.0/16 table main matches"},
		{args: "route del 10.99.0.0/16", code: 1, err: "no route 10.99.0.0/16 table main"},
		{args: "route add 10.0.0.0/33 via 1.1.1.1 dev x", code: 2, err: `invalid dst "10.0.0.0/33"`},
		{args: "route add 10.0.0.0/8 via 1.1.1.1 dev " + strings.Repeat("x", 32), code: 2, err: "invalid dev"},
		{args: "route add 10.0.0.0/8 via 1.1.1.1 frob 1", code: 2, err: `"frob"`},
		{args: "route frob", code: 2, err: `unknown route command "frob"`},
		{args: "--bogus route show", code: 2, err: `unknown global flag "--bogus"`},
		{args: "route show", out: "=default via 192.0.2.1 dev wan proto static metric 100\n" +
			"10.0.0.0/24 via 10.1.1.2 dev eth1 proto static\n" +
			"10.9.0.0/16 proto static\n\tnexthop via 10.1.1.1 dev eth0 weight 2\n\tnexthop via 10.1.1.2 dev eth1 weight 1\n" +
			"2001:db8::/32 via fe80::1 dev eth2 proto static\n"},
		{args: "-o route show 10.9.0.0/16", out: "=10.9.0.0/16 proto static nexthop via 10.1.1.1 dev eth0 weight 2 nexthop via 10.1.1.2 dev eth1 weight 1\n"},
		{args: "route show table 100", out: "=10.7.0.0/16 dev eth3 table 100 proto bgp\nunreachable 10.8.0.0/16 table 100 proto static metric 5\n"},
		{args: "route show table all dev eth3", out: "=10.7.0.0/16 dev eth3 table 100 proto bgp\n"},
		// Tables in order of their numbers: 100 before main (254).
		{args: "route show root 10.0.0.0/8 table all", out: "=10.7.0.0/16 dev eth3 table 100 proto bgp\nunreachable 10.8.0.0/16 table 100 proto static metric 5\n10.0.0.0/24 via 10.1.1.2 dev eth1 proto static\n10.9.0.0/16 proto static\n\tnexthop via 10.1.1.1 dev eth0 weight 2\n\tnexthop via 10.1.1.2 dev eth1 weight 1\n"},
		{args: "route show match 10.0.0.1", out: "=default via 192.0.2.1 dev wan proto static metric 100\n10.0.0.0/24 via 10.1.1.2 dev eth1 proto static\n"},
		{args: "route show via 10.1.1.1", out: "=10.9.0.0/16 proto static\n\tnexthop via 10.1.1.1 dev eth0 weight 2\n\tnexthop via 10.1.1.2 dev eth1 weight 1\n"},
		{args: "route show frob", code: 2, err: `"frob"`},
		{args: "route get 10.0.0.99", out: "=10.0.0.0/24 via 10.1.1.2 dev eth1 proto static\n"},
		{args: "route get 10.8.1.1 table 100", out: "=unreachable 10.8.0.0/16 table 100 proto static metric 5\n"},
		{args: "route get 10.1.0.99 -j", out: `=[{"dst":"default","gateway":"192.0.2.1","dev":"wan","protocol":"static","metric":100,"flags":[]}]` + "\n"},
		{args: "route get 2001:db9::1", code: 1, err: "no route to 2001:db9::1"},
		{args: "route get banana", code: 2, err: `invalid address "banana"`},
		{args: "route load -", stdin: "10.5.0.0/16 via 10.1.1.1 dev a\n\n# comment\n10.6.0.0/16 via 10.1.1.1 dev\n", code: 1, err: "stdin:4: "},
		{args: "route get 10.5.0.1", out: "=default via 192.0.2.1 dev wan proto static metric 100\n"}, // the bad batch changed nothing
		{args: "route load -", stdin: "10.6.0.0/16 via 10.1.1.1 dev a\n10.5.0.0/16 via 10.1.1.1 dev a\n10.5.0.0/16 via 10.1.1.3 dev b\n"},
		{args: "route get 10.5.0.1", out: "=10.5.0.0/16 via 10.1.1.3 dev b proto static\n"}, // the later line wins
		{args: "route flush", code: 2, err: "route flush: give a SELECTOR"},
		{args: "route f table all", code: 2, err: "flush is never abbreviated"},
		{args: "route flush root 10.5.0.0/15", code: 2, err: "did you mean 10.4.0.0/15?"},
		{args: "route flush root 10.4.0.0/14"},
		{args: "route get 10.5.0.1", out: "=default via 192.0.2.1 dev wan proto static metric 100\n"},
		{args: "route del default"},
		{args: "route del 10.7.0.0/16 table 100 proto bgp dev eth3"},
	}
	for _, s := range steps {
		out, errs, code := d.rtm(s.stdin, strings.Fields(s.args)...)
		if code != s.code {
			t.Errorf("rtm %s: exit %d, want %d (stderr %q)", s.args, code, s.code, errs)
		}
		if exact, ok := strings.CutPrefix(s.out, "="); ok && out != exact {
			t.Errorf("rtm %s: stdout %q, want %q", s.args, out, exact)
		} else if !ok && !strings.Contains(out, s.out) {
			t.Errorf("rtm %s: stdout %q, want it to contain %q", s.args, out, s.out)
		}
		if !strings.Contains(errs, s.err) {
			t.Errorf("rtm %s: stderr %q, want it to contain %q", s.args, errs, s.err)
		}
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(d.mustRtm("route", "show", "-j")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]["dst"] != "10.0.0.0/24" || got[2]["dev"] != "eth2" || got[1]["nexthops"] == nil {
		t.Errorf("route show -j = %v", got)
	}
	if out := d.mustRtm("route", "show", "table", "all"); strings.Contains(out, "10.7.0.0") {
		t.Errorf("route del with its table left %q", out)
	}
}

// TestMonitorJSON checks the monitor's line format: the table as add lines,
// a synced line, then changes.
func TestMonitorJSON(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "-s", d.socket, "monitor", "-j")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("monitor ended: %v", lines.Err())
		}
		return lines.Text()
	}
	want := []string{
		`{"seq":1,"op":"add","kind":"route","dst":"10.0.0.0/8","gateway":"10.1.1.1","dev":"eth0","protocol":"static","flags":[]}`,
		`{"seq":1,"op":"synced"}`,
		`{"seq":2,"op":"change","kind":"route","dst":"10.0.0.0/8","gateway":"10.1.1.2","dev":"eth0","protocol":"static","flags":[]}`,
		`{"seq":3,"op":"add","kind":"route","dst":"default","gateway":"::1","dev":"lo","table":"7","protocol":"bgp","metric":5,"flags":[]}`,
		`{"seq":4,"op":"del","kind":"route","dst":"10.0.0.0/8"}`,
		`{"seq":5,"op":"del","kind":"route","dst":"default","table":"7"}`,
		`{"seq":6,"op":"add","kind":"mac","dst":"10.0.0.1","dev":"eth0","lladdr":"02:00:00:00:00:01"}`,
		`{"seq":7,"op":"del","kind":"mac","lladdr":"02:00:00:00:00:01"}`,
	}
	for i, w := range want {
		if i == 2 {
			d.mustRtm("route", "replace", "10.0.0.0/8", "via", "10.1.1.2", "dev", "eth0")
			d.mustRtm("route", "replace", "10.0.0.0/8", "via", "10.1.1.2", "dev", "eth0") // no change, no line
			d.mustRtm("-6", "route", "add", "default", "via", "::1", "dev", "lo", "table", "7", "proto", "bgp", "metric", "5")
			d.mustRtm("route", "del", "10.0.0.0/8")
			d.mustRtm("route", "flush", "table", "7")
			d.mustRtm("mac", "add", "02:00:00:00:00:01", "10.0.0.1", "dev", "eth0")
			d.mustRtm("mac", "del", "02:00:00:00:00:01")
		}
		if got := next(); got != w {
			t.Errorf("line %d = %s\nwant       %s", i+1, got, w)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(want[i]), &v); err != nil {
			t.Errorf("line %d is not JSON: %v", i+1, err)
		}
	}
}

// TestClientMenu drives `rtm client` through piped stdin.
func TestClientMenu(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "10.1.1.2", "dev", "eth1")
	// The client registers after its first sync; its input waits for
	// that, since rtmd refuses to register a process that has exited.
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "--socket", d.socket, "client")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.stderr.String(), "client registered"); {
		if time.Now().After(deadline) {
			stdin.Close()
			cmd.Wait()
			t.Fatalf("rtm client did not register:\n%s\n%s", &stderr, d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	io.WriteString(stdin, "1\n2 10.1.2.3\nlookup\n10.200.0.1\nget 11.0.0.1\nfrob\nstatus\nshow root 10.1.0.0/16\nshow frob\nquit\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rtm client: %v: %s", err, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"# seq 2, 2 of 2 routes\n10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n10.1.0.0/16 via 10.1.1.2 dev eth1 proto static\n",
		"rtm client> 10.1.0.0/16 via 10.1.1.2 dev eth1 proto static\n",
		"address: 10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n",
		"# seq 2, 1 of 2 routes\n10.1.0.0/16 via 10.1.1.2 dev eth1 proto static\n",
		`error: invalid keyword "frob"`,
		"no route to 11.0.0.1\n",
		`unknown choice "frob"`,
		"seq 2, 2 routes, 0 resyncs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rtm client output lacks %q:\n%s", want, out)
		}
	}
	// It registered, and said goodbye when its input ended.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(d.stderr.String(), `said goodbye" client="#`) || !strings.Contains(d.stderr.String(), `\"rtm client\"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no goodbye from rtm client in rtmd's log:\n%s", d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsole drives rtmd's console through a stdin pipe with -console:
// the grammar, selectors, and the questions before flush all, route flush
// and stop.
func TestConsole(t *testing.T) {
	d := startRtmd(t, "-console")
	fmt.Fprint(d.stdin, "route add 10.0.0.0/8 via 10.1.1.1 dev eth0\n2\n10.2.0.0/16 via 10.1.1.1 dev eth2\n6 10.2.3.4\n"+
		"route add 1.2.3.4/40 via 1.1.1.1 dev x\nroute add 10.3.0.0/16 dev eth3 table 9\n"+
		"flush all\nn\nf all\nstop\nno\n13\nmaybe\nmac add 02:00:00:00:00:01 10.0.0.1 dev eth0\nmac show -j\n"+
		"route flush table 9\ny\nroute show table all dev eth2\n1\n")
	d.stdin.Close()
	want := "10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n10.2.0.0/16 via 10.1.1.1 dev eth2 proto static\n"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stdout.String(), "routes flushed\n10.2.0.0/16 via 10.1.1.1 dev eth2 proto static\n"+want) {
		if time.Now().After(deadline) {
			t.Fatalf("console output lacks the table:\n%s", d.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := d.stdout.String()
	for _, w := range []string{"ok\nok\n10.2.0.0/16 via 10.1.1.1 dev eth2 proto static\n", `error: route add: invalid dst "1.2.3.4/40"`,
		"flush all routes and MACs? [y/N] n\ncancelled\n", `error: command "f": flush is never abbreviated`,
		"stop rtmd? [y/N] no\ncancelled\n", "flush all routes and MACs? [y/N] maybe\ncancelled\n",
		"flush the routes that route flush table 9 picks? [y/N] y\n1 routes flushed\n",
		`ok` + "\n" + `[{"dst":"10.0.0.1","dev":"eth0","lladdr":"02:00:00:00:00:01"}]` + "\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("console output lacks %q:\n%s", w, out)
		}
	}
	if got := d.mustRtm("route", "show", "table", "all"); got != want {
		t.Errorf("route show after console = %q, want %q", got, want)
	}
}

// TestSocketInUse checks that a second rtmd on a served socket refuses to
// start, and that a stale socket file is replaced.
func TestSocketInUse(t *testing.T) {
	d := startRtmd(t)
	out, err := exec.Command(filepath.Join(binDir, "rtmd"), "-socket", d.socket, "-state", "none").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another rtmd is already serving") {
		t.Errorf("second rtmd: %v, %s", err, out)
	}
	// One rtmd at a time: each holds a message queue of the per-uid
	// budget, which other rtmds on the host share.
	d.stop()

	stale := filepath.Join(shortDir(t), "stale.sock")
	ln, lerr := net.Listen("unix", stale)
	if lerr != nil {
		t.Fatal(lerr)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "rtmd"), "-socket", stale, "-state", "none")
	stderr := new(lockedBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			t.Errorf("rtmd on the stale socket: %v\n%s", err, stderr)
		}
		for _, l := range leftovers(stale) {
			t.Errorf("rtmd on the stale socket left %s behind", l)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", stale)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err // for the deferred check
			t.Fatalf("rtmd on the stale socket exited: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rtmd did not replace the stale socket: %v\n%s", err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, %v; want 0660", fi.Mode().Perm(), err)
	}
}
