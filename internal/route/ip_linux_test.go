package route_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// ipRoutes are the routes TestIPBatch gives to ip: every type, tables,
// metrics, protocols, src, ECMP, via inet6, default, IPv6. IPv6 routes
// carry a metric, since the kernel gives them 1024 when they have none.
var ipRoutes = []string{
	"192.0.2.0/24 via 10.0.0.1 dev d0 proto static",
	"198.51.100.0/24 dev d0 proto static",
	"default via 10.0.0.1 dev d0 proto static",
	"203.0.113.0/24 via 10.0.0.1 dev d0 proto static metric 100",
	"203.0.114.0/24 via 10.0.0.1 dev d0 proto bgp",
	"203.0.115.0/24 via 10.0.0.1 dev d0 table 100 proto static",
	"203.0.116.0/24 via 10.0.0.1 dev d0 proto static src 10.0.0.2",
	"10.9.9.9 via 10.0.0.1 dev d0 proto boot",
	"blackhole 172.16.1.0/24 proto static",
	"unreachable 172.16.2.0/24 proto static metric 5",
	"prohibit 172.16.3.0/24 proto bgp",
	"throw 172.16.4.0/24 table 100 proto static",
	"172.17.0.0/16 proto static nexthop via 10.0.0.1 dev d0 weight 2 nexthop via 10.1.0.1 dev d1",
	"172.18.0.0/16 table default proto ospf metric 7 nexthop via 10.0.0.1 dev d0 nexthop via 10.1.0.1 dev d1 weight 3",
	"172.19.0.0/16 proto 77 nexthop dev d0 nexthop dev d1",
	"172.21.0.0/16 via inet6 2001:db8::1 dev d0 proto static",
	"local 10.5.0.0/16 dev d0 table main proto static",
	"2001:db8:5::/48 via 2001:db8::1 dev d0 proto static metric 1024",
	"2001:db8:6::/48 dev d0 proto static metric 10",
	"default via 2001:db8::1 dev d0 proto bgp metric 1024",
	"blackhole 2001:db8:7::/48 proto static metric 1024",
	"2001:db8:8::/48 proto static metric 1024 nexthop via 2001:db8::1 dev d0 nexthop via 2001:db8:1::1 dev d1 weight 4",
	"unreachable 2001:db8:9::/48 table 100 proto static metric 5",
	"unreachable ::/0 table 100 proto static metric 1024",
}

// TestIPBatch gives ip -batch, in a private network namespace, the routes
// as AppendLine writes them after "route add", and checks that ip route
// show prints them as AppendText does (but for the words rtm does not keep)
// and that they parse back to the same routes.
func TestIPBatch(t *testing.T) {
	ip, err := exec.LookPath("ip")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs ip (iproute2) and root for a network namespace")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := "rtmtest-" + hex.EncodeToString(rnd[:])
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(ip, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("", "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run(`link add d0 type veth peer name d1
link set lo up
link set d0 up
link set d1 up
addr add 10.0.0.2/24 dev d0
addr add 10.1.0.2/24 dev d1
addr add 2001:db8::2/64 dev d0 nodad
addr add 2001:db8:1::2/64 dev d1 nodad
`, "-n", ns, "-batch", "-")

	want := map[route.Key]route.Route{}
	var batch strings.Builder
	for _, line := range ipRoutes {
		r, _, err := route.ParseLine(line)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", line, err)
		}
		want[r.Key()] = r
		batch.WriteString("route add ")
		batch.Write(r.AppendLine(nil))
		batch.WriteByte('\n')
	}
	run(batch.String(), "-n", ns, "-batch", "-")

	got := map[route.Key]string{}
	for _, fam := range []int{4, 6} {
		{
			table := "all"
			out := run("", "-n", ns, "-"+string(rune('0'+fam)), "route", "show", "table", table)
			for _, line := range route.Lines(out) {
				if line == "" || strings.Contains(line, "proto kernel") || strings.Contains(line, " table local ") {
					continue
				}
				r, _, err := route.ParseOptions{Family: fam}.ParseLine(line)
				if err != nil {
					t.Errorf("ip route show table %s printed %q: ParseLine: %v", table, line, err)
					continue
				}
				w, ok := want[r.Key()]
				if !ok {
					t.Errorf("ip route show table %s printed %q: not a route given", table, line)
					continue
				}
				if w := reread(w); !r.Equal(&w) {
					t.Errorf("ip route show table %s printed %q: reads as %v, want %v", table, line, r, w)
				}
				got[r.Key()] = line
			}
		}
	}
	checkJSON(t, want, run("", "-n", ns, "-j", "-4", "route", "show", "table", "all"),
		run("", "-n", ns, "-j", "-6", "route", "show", "table", "all"))
	for k, r := range want {
		line, ok := got[k]
		if !ok {
			t.Errorf("route %v: ip route show does not print it", r)
			continue
		}
		// ip's text with the words rtm does not keep taken out; and ip
		// does not print the main table of a local route.
		ipText := dropWords(line)
		if r.Type == route.Local {
			ipText = strings.Replace(ipText, " dev d0", " dev d0 table main", 1)
		}
		// and an IPv6 default without a gateway is "::/0" (see AppendText).
		if r.Dst.Bits() == 0 && r.Dst.Addr().Is6() && !strings.Contains(ipText, " via ") {
			ipText = strings.Replace(ipText, "default", "::/0", 1)
		}
		if s := r.String(); s != ipText {
			t.Errorf("ip route show printed\n%q (%q)\nrtm prints\n%q", ipText, line, s)
		}
	}
}

// dropWords takes out of an ip route show line what rtm does not print:
// trailing spaces, scope, pref, and the "dev lo" of IPv6 routes without
// next hops.
func dropWords(line string) string {
	for _, w := range []string{" scope link", " scope host", " pref medium", " dev lo"} {
		line = strings.ReplaceAll(line, w, "")
	}
	lines := strings.Split(line, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// checkJSON checks that AppendJSON writes each route as ip -j route show
// does, but for the keys rtm does not keep (scope, pref, the dev lo of IPv6
// routes without next hops). outs are ip -j -4 and ip -j -6's output.
func checkJSON(t *testing.T, want map[route.Key]route.Route, outs ...string) {
	t.Helper()
	type key struct {
		v6         bool
		dst, table string
	}
	ipObj := map[key]map[string]any{}
	for i, out := range outs {
		var objs []map[string]any
		if err := json.Unmarshal([]byte(out), &objs); err != nil {
			t.Fatalf("ip -j route show: %v\n%s", err, out)
		}
		for _, o := range objs {
			delete(o, "scope")
			delete(o, "pref")
			if o["type"] != nil && o["dev"] == "lo" {
				delete(o, "dev")
			}
			table, _ := o["table"].(string)
			ipObj[key{i == 1, o["dst"].(string), table}] = o
		}
	}
	for _, r := range want {
		var o map[string]any
		b := r.AppendJSON(nil)
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("AppendJSON(%v) = %s: %v", r, b, err)
		}
		table, _ := o["table"].(string)
		ip := ipObj[key{r.Dst.Addr().Is6(), o["dst"].(string), table}]
		if !reflect.DeepEqual(o, ip) {
			t.Errorf("AppendJSON(%v) =\n%s\nip -j prints (less scope, pref)\n%v", r, b, ip)
		}
	}
}
