package route_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/rtm-project/rtm/internal/route"
)

// textCases are lines as `ip route add` takes them and `ip route show`
// prints them (copied from iproute2 6.1's output, trailing spaces and
// all), with the text rtm prints for the route they mean. ip's default
// protocol is boot, rtm's is static, hence the "proto static" that ip's
// lines do not have.
var textCases = []struct {
	in, want string
	ignored  int
}{
	{in: "192.0.2.0/24 via 10.0.0.1 dev d0 ", want: "192.0.2.0/24 via 10.0.0.1 dev d0 proto static"},
	{in: "192.0.2.0/24 via 10.0.0.1 dev d0 proto boot", want: "192.0.2.0/24 via 10.0.0.1 dev d0"},
	{in: "198.51.100.0/24 dev d0 scope link ", want: "198.51.100.0/24 dev d0 proto static", ignored: 1},
	{in: "default via 10.0.0.1 dev d0 ", want: "default via 10.0.0.1 dev d0 proto static"},
	{in: "0.0.0.0/0 via 10.0.0.1 proto boot", want: "default via 10.0.0.1"},
	{in: "10.9.9.9 via 10.0.0.1 dev d0 proto boot", want: "10.9.9.9 via 10.0.0.1 dev d0"},
	{in: "10.9.9.9/32 via 10.0.0.1 dev d0", want: "10.9.9.9 via 10.0.0.1 dev d0 proto static"},
	{in: "203.0.113.0/24 via 10.0.0.1 dev d0 metric 100 proto boot", want: "203.0.113.0/24 via 10.0.0.1 dev d0 metric 100"},
	{in: "203.0.114.0/24 via 10.0.0.1 dev d0 proto bgp ", want: "203.0.114.0/24 via 10.0.0.1 dev d0 proto bgp"},
	{in: "203.0.115.0/24 via 10.0.0.1 dev d0 table 100 proto boot", want: "203.0.115.0/24 via 10.0.0.1 dev d0 table 100"},
	{in: "172.23.0.0/16 via 10.0.0.1 dev d0 table 5000 proto static ", want: "172.23.0.0/16 via 10.0.0.1 dev d0 table 5000 proto static"},
	{in: "172.20.0.0/16 via 10.0.0.1 dev d0 table default proto 77 ", want: "172.20.0.0/16 via 10.0.0.1 dev d0 table default proto 77"},
	{in: "172.20.0.0/16 via 10.0.0.1 dev d0 table 253 protocol 186", want: "172.20.0.0/16 via 10.0.0.1 dev d0 table default proto bgp"},
	{in: "203.0.116.0/24 via 10.0.0.1 dev d0 src 10.0.0.2 proto boot", want: "203.0.116.0/24 via 10.0.0.1 dev d0 src 10.0.0.2"},
	{in: "10.0.0.0/24 dev d0 proto kernel scope link src 10.0.0.2 ", want: "10.0.0.0/24 dev d0 proto kernel src 10.0.0.2", ignored: 1},
	{in: "172.24.0.0/16 dev d0 proto ospf scope link src 10.0.0.2 metric 3 ", want: "172.24.0.0/16 dev d0 proto ospf src 10.0.0.2 metric 3", ignored: 1},
	{in: "blackhole 172.16.1.0/24 ", want: "blackhole 172.16.1.0/24 proto static"},
	{in: "unreachable 172.16.2.0/24 proto boot", want: "unreachable 172.16.2.0/24"},
	{in: "prohibit 172.16.3.0/24 proto boot", want: "prohibit 172.16.3.0/24"},
	{in: "throw 172.16.4.0/24 proto boot", want: "throw 172.16.4.0/24"},
	{in: "blackhole 172.16.5.0/24 proto bgp metric 5 ", want: "blackhole 172.16.5.0/24 proto bgp metric 5"},
	{in: "local 10.5.0.0/16 dev d0 table local scope host proto boot", want: "local 10.5.0.0/16 dev d0 table local", ignored: 1},
	{in: "local 10.5.0.0/16 dev d0 scope host proto boot", want: "local 10.5.0.0/16 dev d0 table main", ignored: 1},
	{in: "local 10.5.0.0/16 dev d0 table main", want: "local 10.5.0.0/16 dev d0 table main proto static"},
	{in: "blackhole 2001:db8:7::/48 dev lo metric 1024 pref medium", want: "blackhole 2001:db8:7::/48 proto static metric 1024", ignored: 2},
	{in: "172.21.0.0/16 via inet6 2001:db8::1 dev d0 proto boot", want: "172.21.0.0/16 via inet6 2001:db8::1 dev d0"},
	{in: "172.17.0.0/16 proto boot\n\tnexthop via 10.0.0.1 dev d0 weight 2 \n\tnexthop via 10.1.0.1 dev d1 weight 1 ",
		want: "172.17.0.0/16\n\tnexthop via 10.0.0.1 dev d0 weight 2\n\tnexthop via 10.1.0.1 dev d1 weight 1"},
	{in: "172.18.0.0/16 table 100 proto bgp metric 7 \n\tnexthop via 10.0.0.1 dev d0 weight 1 \n\tnexthop via 10.1.0.1 dev d1 weight 3 ",
		want: "172.18.0.0/16 table 100 proto bgp metric 7\n\tnexthop via 10.0.0.1 dev d0 weight 1\n\tnexthop via 10.1.0.1 dev d1 weight 3"},
	{in: "172.27.0.0/16 proto boot nexthop dev d0 weight 1 nexthop dev d1",
		want: "172.27.0.0/16\n\tnexthop dev d0 weight 1\n\tnexthop dev d1 weight 1"},
	{in: "172.28.0.0/16 proto boot nexthop via inet6 2001:db8::1 dev d0 weight 1 nexthop via 10.1.0.1 dev d1 weight 1 onlink",
		want: "172.28.0.0/16\n\tnexthop via inet6 2001:db8::1 dev d0 weight 1\n\tnexthop via 10.1.0.1 dev d1 weight 1", ignored: 1},
	{in: "172.26.0.0/16 nexthop via 10.0.0.1 dev d0", want: "172.26.0.0/16 via 10.0.0.1 dev d0 proto static"},
	{in: "2001:db8:5::/48 via 2001:db8::1 dev d0 metric 1024 pref medium", want: "2001:db8:5::/48 via 2001:db8::1 dev d0 proto static metric 1024", ignored: 1},
	{in: "2001:db8::/64 dev d0 proto kernel metric 256 pref medium", want: "2001:db8::/64 dev d0 proto kernel metric 256", ignored: 1},
	{in: "2001:db8:8::/48 metric 1024 pref medium\n\tnexthop via 2001:db8::1 dev d0 weight 1 \n\tnexthop via 2001:db8:1::1 dev d1 weight 4 ",
		want: "2001:db8:8::/48 proto static metric 1024\n\tnexthop via 2001:db8::1 dev d0 weight 1\n\tnexthop via 2001:db8:1::1 dev d1 weight 4", ignored: 1},
	{in: "unreachable 2001:db8:9::/48 metric 5 pref medium proto boot", want: "unreachable 2001:db8:9::/48 metric 5", ignored: 1},
	{in: "default via 2001:db8::1 dev d0 metric 1024 pref medium", want: "default via 2001:db8::1 dev d0 proto static metric 1024", ignored: 1},
	{in: "fe80::/64 dev d1 proto kernel metric 256 pref medium", want: "fe80::/64 dev d1 proto kernel metric 256", ignored: 1},
	{in: "2001:db8::9 via fe80::1 dev d0", want: "2001:db8::9 via fe80::1 dev d0 proto static"},
	// ip route add's forms: keywords in any order, synonyms, to, types.
	{in: "to 10.0.0.0/8 dev eth0 via 192.0.2.1", want: "10.0.0.0/8 via 192.0.2.1 dev eth0 proto static"},
	{in: "via 192.0.2.1 10.0.0.0/8", want: "10.0.0.0/8 via 192.0.2.1 proto static"},
	{in: "unicast 10.0.0.0/8 oif eth0 preference 9 via inet 192.0.2.1", want: "10.0.0.0/8 via 192.0.2.1 dev eth0 proto static metric 9"},
	{in: "to blackhole 10.0.0.0/8", want: "blackhole 10.0.0.0/8 proto static"},
	{in: "10.0.0.0/8 via 192.0.2.1 mtu lock 1400 advmss 1300 expires 300sec realm 4 tos 0x10 linkdown dead",
		want: "10.0.0.0/8 via 192.0.2.1 proto static", ignored: 7},
	{in: "10.0.0.0/8 nexthop via 192.0.2.1 weight 1 nexthop via 192.0.2.2 weight 256",
		want: "10.0.0.0/8 proto static\n\tnexthop via 192.0.2.1 weight 1\n\tnexthop via 192.0.2.2 weight 256"},
}

// reread returns r as it reads back from its text: as ip, rtm writes no
// protocol for boot, and reads no protocol as static, so boot reads back as
// static.
func reread(r route.Route) route.Route {
	if r.Proto == route.ProtoBoot {
		r.Proto = route.ProtoStatic
	}
	return r
}

func TestParsePrint(t *testing.T) {
	for _, tt := range textCases {
		t.Run(tt.in, func(t *testing.T) {
			r, ign, err := route.ParseLine(tt.in)
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("ParseLine(%q).String() =\n%q, want\n%q", tt.in, got, tt.want)
			}
			if ign != tt.ignored {
				t.Errorf("ParseLine(%q) ignored %d words, want %d", tt.in, ign, tt.ignored)
			}
			line := string(r.AppendLine(nil))
			if want := strings.ReplaceAll(tt.want, "\n\t", " "); line != want {
				t.Errorf("AppendLine = %q, want %q", line, want)
			}
			want := reread(r)
			for _, s := range []string{r.String(), line} {
				r2, ign, err := route.ParseLine(s)
				if err != nil || ign != 0 || !r2.Equal(&want) {
					t.Errorf("ParseLine(%q) = %v, %d, %v; want %v", s, r2, ign, err, want)
				}
			}
			r3, _, err := route.ParseFields(strings.Fields(tt.in))
			if err != nil || !r3.Equal(&r) {
				t.Errorf("ParseFields(%q) = %v, %v; want %v", tt.in, r3, err, r)
			}
		})
	}
}

func TestParseModel(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	for _, tt := range []struct {
		in   string
		opt  route.ParseOptions
		want route.Route
	}{
		{"default dev eth0", route.ParseOptions{}, route.Simple(pfx("0.0.0.0/0"), netip.Addr{}, "eth0")},
		{"default dev eth0", route.ParseOptions{Family: 6}, route.Simple(pfx("::/0"), netip.Addr{}, "eth0")},
		{"default via fe80::1 dev eth0", route.ParseOptions{}, route.Simple(pfx("::/0"), addr("fe80::1"), "eth0")},
		{"default via inet6 fe80::1 dev eth0", route.ParseOptions{}, route.Simple(pfx("0.0.0.0/0"), addr("fe80::1"), "eth0")},
		{"default via inet6 fe80::1 dev eth0", route.ParseOptions{Family: 6}, route.Simple(pfx("::/0"), addr("fe80::1"), "eth0")},
		{"default dev eth0 src 2001:db8::1", route.ParseOptions{}, func() route.Route {
			r := route.Simple(pfx("::/0"), netip.Addr{}, "eth0")
			r.Src = addr("2001:db8::1")
			return r
		}()},
		{"10.0.0.0/8 via 192.0.2.1 dev eth0", route.ParseOptions{}, route.Simple(pfx("10.0.0.0/8"), addr("192.0.2.1"), "eth0")},
		{"10.0.0.0/8 via 192.0.2.1 dev eth0 proto static metric 7", route.ParseOptions{Family: 4}, func() route.Route {
			r := route.Simple(pfx("10.0.0.0/8"), addr("192.0.2.1"), "eth0")
			r.Metric = 7
			return r
		}()},
		{"local 10.0.0.1", route.ParseOptions{}, route.Route{Table: route.TableMain, Dst: pfx("10.0.0.1/32"),
			Attrs: route.Attrs{Type: route.Local, Proto: route.ProtoStatic}}},
	} {
		got, _, err := tt.opt.ParseLine(tt.in)
		if err != nil || !got.Equal(&tt.want) {
			t.Errorf("%+v.ParseLine(%q) = %v, %v; want %v", tt.opt, tt.in, got, err, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	hops33 := "10.0.0.0/8"
	for i := range 33 {
		hops33 += " nexthop via 192.0.2." + strconv.Itoa(i+1)
	}
	for _, tt := range []struct {
		in, field, value string
		opt              route.ParseOptions
	}{
		{in: "", field: "dst"},
		{in: "dev eth0", field: "dst"},
		{in: "10.0.0.1/8 via 192.0.2.1", field: "dst", value: "10.0.0.1/8"},
		{in: "10.0.0.0/33 via 192.0.2.1", field: "dst", value: "10.0.0.0/33"},
		{in: "foo 10.0.0.0/8 via 192.0.2.1", field: "keyword", value: "foo"},
		{in: "10.0.0.0/8 via 192.0.2.1 foo 3", field: "keyword", value: "foo"},
		{in: "10.0.0.0/8 10.1.0.0/16 via 192.0.2.1", field: "keyword", value: "10.1.0.0/16"},
		{in: "broadcast 10.0.0.0/8", field: "type", value: "broadcast"},
		{in: "2001:db8::/32 via 192.0.2.1", field: "gateway", value: "192.0.2.1"},
		{in: "10.0.0.0/8 via inet 2001:db8::1", field: "gateway", value: "2001:db8::1"},
		{in: "10.0.0.0/8 via inet6 192.0.2.1", field: "gateway", value: "192.0.2.1"},
		{in: "10.0.0.0/8 via 192.0.2.300", field: "gateway", value: "192.0.2.300"},
		{in: "10.0.0.0/8 via 192.0.2.1 via 192.0.2.2", field: "gateway", value: "192.0.2.2"},
		{in: "10.0.0.0/8 dev a dev b", field: "dev", value: "b"},
		{in: "10.0.0.0/8 dev a table 5 table 6", field: "table", value: "6"},
		{in: "10.0.0.0/8 dev a metric 5 priority 6", field: "metric", value: "6"},
		{in: "10.0.0.0/8 dev a proto bgp protocol ospf", field: "proto", value: "ospf"},
		{in: "10.0.0.0/8 dev a src 10.0.0.1 src 10.0.0.2", field: "src", value: "10.0.0.2"},
		{in: "10.0.0.0/8 via", field: "gateway", value: "via"},
		{in: "10.0.0.0/8 dev", field: "dev", value: "dev"},
		{in: "10.0.0.0/8 dev a metric", field: "metric", value: "metric"},
		{in: "10.0.0.0/8 dev a scope", field: "scope", value: "scope"},
		{in: "10.0.0.0/8 dev a mtu lock", field: "mtu", value: "mtu lock"},
		{in: "10.0.0.0/8 dev a metric x", field: "metric", value: "x"},
		{in: "10.0.0.0/8 dev a metric 4294967296", field: "metric", value: "4294967296"},
		{in: "10.0.0.0/8 dev a table 0", field: "table", value: "0"},
		{in: "10.0.0.0/8 dev a table nosuch", field: "table", value: "nosuch"},
		{in: "10.0.0.0/8 dev a proto nosuch", field: "proto", value: "nosuch"},
		{in: "10.0.0.0/8 dev a proto 256", field: "proto", value: "256"},
		{in: "10.0.0.0/8 dev a src 2001:db8::1", field: "src", value: "2001:db8::1"},
		{in: "10.0.0.0/8 dev a weight 2", field: "weight", value: "weight"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 weight 2", field: "weight", value: "2"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 weight 0 nexthop dev b", field: "weight", value: "0"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 weight 257 nexthop dev b", field: "weight", value: "257"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 nexthop via 192.0.2.1", field: "nexthop", value: "via 192.0.2.1"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 nexthop", field: "nexthop", value: "nexthop"},
		{in: "10.0.0.0/8 nexthop via 192.0.2.1 nexthop metric 5", field: "keyword", value: "metric"},
		{in: "10.0.0.0/8 via 192.0.2.1 nexthop dev b", field: "nexthop", value: "nexthop"},
		{in: hops33, field: "nexthop", value: "33"},
		{in: "blackhole 10.0.0.0/8 dev a", field: "nexthop", value: "dev a"},
		{in: "local 10.0.0.0/8 via 192.0.2.1 dev a", field: "gateway", value: "192.0.2.1"},
		{in: "local 10.0.0.0/8 nexthop dev a nexthop dev b", field: "nexthop", value: "2"},
		{in: "10.0.0.0/8 proto static", field: "nexthop"},
		{in: "10.0.0.0/8 dev abcdefghijklmnop", field: "dev", value: "abcdefghijklmnop"},
		{in: "10.0.0.0/8 dev a/b", field: "dev", value: "a/b"},
		{in: "2001:db8::/32 dev a", opt: route.ParseOptions{Family: 4}, field: "dst", value: "2001:db8::/32"},
		{in: "10.0.0.0/8 dev a", opt: route.ParseOptions{Family: 6}, field: "dst", value: "10.0.0.0/8"},
		{in: "default via 192.0.2.1", opt: route.ParseOptions{Family: 6}, field: "gateway", value: "192.0.2.1"},
		{in: "unicast", field: "dst", value: "unicast"},
	} {
		_, _, err := tt.opt.ParseLine(tt.in)
		var fe *route.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("ParseLine(%q) error = %v, want a FieldError", tt.in, err)
			continue
		}
		if fe.Field != tt.field || tt.value != "" && fe.Value != tt.value {
			t.Errorf("ParseLine(%q) error = %v (field %q, value %q), want field %q, value %q", tt.in, err, fe.Field, fe.Value, tt.field, tt.value)
		}
		// The slice form gives the same error.
		_, _, err2 := tt.opt.ParseFields(strings.Fields(tt.in))
		if err2 == nil || err2.Error() != err.Error() {
			t.Errorf("ParseFields(%q) error = %v, want %v", tt.in, err2, err)
		}
	}
}

// TestParseHint checks that a prefix with host bits set gets the masked
// prefix as a hint, as ip does.
func TestParseHint(t *testing.T) {
	_, _, err := route.ParseLine("10.0.0.1/8 via 192.0.2.1 dev eth0")
	if err == nil || !strings.Contains(err.Error(), "did you mean 10.0.0.0/8?") {
		t.Errorf("ParseLine(10.0.0.1/8 ...) error = %v, want the hint 10.0.0.0/8", err)
	}
}

// TestRandomRoundTrip prints random routes and parses them back.
func TestRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var into route.Route
	for range 20000 {
		r := randRoute(rng)
		want := reread(r)
		for _, s := range []string{r.String(), string(r.AppendLine(nil))} {
			opt := route.ParseOptions{}
			got, ign, err := opt.ParseLine(s)
			if err != nil || ign != 0 || !got.Equal(&want) {
				t.Fatalf("ParseLine(%q) = %v, %d, %v; want %v", s, got, ign, err, want)
			}
			if _, err := opt.ParseLineInto(&into, s); err != nil || !into.Equal(&want) {
				t.Fatalf("ParseLineInto(%q) = %v, %v; want %v", s, into, err, want)
			}
		}
	}
}

// TestFastPath checks that the lines the fast path takes parse as the
// general parser reads them, and that it allocates nothing.
func TestFastPath(t *testing.T) {
	for _, line := range []string{
		"10.0.0.0/8 via 192.0.2.1 dev eth0",
		"10.0.0.0/8 via 192.0.2.1 dev eth0 proto static",
		"10.0.0.0/8 via 192.0.2.1 dev eth0 proto static metric 4294967295",
		"10.0.0.0/8 via 192.0.2.1 dev eth0 metric 007 ",
		"10.1.2.3/32 via 0.0.0.0 dev abcdefghijklmno",
	} {
		var fast route.Route
		if _, err := (route.ParseOptions{}).ParseLineInto(&fast, line); err != nil {
			t.Fatalf("ParseLineInto(%q): %v", line, err)
		}
		// Written with a tab, the line takes the general path.
		slow, _, err := route.ParseLine(strings.Replace(line, " ", "\t", 1))
		if err != nil || !slow.Equal(&fast) {
			t.Errorf("ParseLine(%q) = %v, %v; fast path gave %v", line, slow, err, fast)
		}
	}
	var r route.Route
	line := "10.0.0.0/8 via 192.0.2.1 dev eth0 proto static"
	opt := route.ParseOptions{}
	opt.ParseLineInto(&r, line)
	if n := testing.AllocsPerRun(100, func() { opt.ParseLineInto(&r, line) }); n != 0 {
		t.Errorf("ParseLineInto(%q) allocates %v times, want 0", line, n)
	}
	multi := "10.0.0.0/8 proto bgp nexthop via 192.0.2.1 dev eth0 weight 3 nexthop via 192.0.2.2 dev eth1"
	opt.ParseLineInto(&r, multi)
	if n := testing.AllocsPerRun(100, func() { opt.ParseLineInto(&r, multi) }); n != 0 {
		t.Errorf("ParseLineInto(%q) allocates %v times, want 0", multi, n)
	}
}

func TestLines(t *testing.T) {
	text := "default via 10.0.0.1 dev d0 \n" +
		"172.17.0.0/16 \n\tnexthop via 10.0.0.1 dev d0 weight 2 \n\tnexthop via 10.1.0.1 dev d1 weight 1 \n" +
		"\n" +
		"# comment\n" +
		"  10.0.0.0/8 dev x\r\n" +
		"10.1.0.0/16 nexthop dev a\n nexthop dev b"
	type line struct {
		n int
		s string
	}
	var got []line
	for n, s := range route.Lines(text) {
		got = append(got, line{n, s})
	}
	want := []line{
		{1, "default via 10.0.0.1 dev d0 "},
		{2, "172.17.0.0/16 \n\tnexthop via 10.0.0.1 dev d0 weight 2 \n\tnexthop via 10.1.0.1 dev d1 weight 1 "},
		{5, ""},
		{6, "# comment"},
		{7, "  10.0.0.0/8 dev x\r"},
		{8, "10.1.0.0/16 nexthop dev a\n nexthop dev b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Lines = %+v,\nwant %+v", got, want)
	}
	// ScanLines splits the same, however the input is cut in reads.
	for _, size := range []int{1, 2, 7, 4096} {
		sc := bufio.NewScanner(iotest.OneByteReader(strings.NewReader(text)))
		if size > 1 {
			sc = bufio.NewScanner(iotest.HalfReader(strings.NewReader(text)))
		}
		sc.Buffer(make([]byte, size), 1<<20)
		sc.Split(route.ScanLines)
		var got []line
		n := 1
		for sc.Scan() {
			got = append(got, line{n, sc.Text()})
			n += 1 + strings.Count(sc.Text(), "\n")
		}
		if err := sc.Err(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ScanLines (buffer %d) = %+v, %v,\nwant %+v", size, got, err, want)
		}
	}
	if _, _, err := route.ParseLine(want[1].s); err != nil {
		t.Errorf("ParseLine(%q): %v", want[1].s, err)
	}
}

func TestParseSelector(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tt := range []struct {
		in     string
		family int
		want   route.Selector
	}{
		{"", 0, route.Selector{Table: route.TableMain}},
		{"table all", 0, route.Selector{}},
		{"table 100", 0, route.Selector{Table: 100}},
		{"table local", 0, route.Selector{Table: route.TableLocal}},
		{"10.0.0.0/8", 0, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: pfx("10.0.0.0/8")}},
		{"to exact 10.0.0.0/8", 0, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: pfx("10.0.0.0/8")}},
		{"root 10.0.0.0/8 table all", 0, route.Selector{Mode: route.Root, Prefix: pfx("10.0.0.0/8")}},
		{"match 10.1.2.3", 0, route.Selector{Table: route.TableMain, Mode: route.Match, Prefix: pfx("10.1.2.3/32")}},
		{"to match 2001:db8::1", 0, route.Selector{Table: route.TableMain, Mode: route.Match, Prefix: pfx("2001:db8::1/128")}},
		{"default", 0, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: pfx("0.0.0.0/0")}},
		{"default", 6, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: pfx("::/0")}},
		{"dev eth0 via 192.0.2.1 proto bgp type blackhole metric 5", 0, route.Selector{Table: route.TableMain,
			Dev: "eth0", Via: netip.MustParseAddr("192.0.2.1"), Proto: route.ProtoBGP, HasProto: true,
			Type: route.Blackhole, Metric: 5, HasMetric: true}},
		{"oif eth0 via inet6 fe80::1 protocol 0 priority 0", 0, route.Selector{Table: route.TableMain,
			Dev: "eth0", Via: netip.MustParseAddr("fe80::1"), HasProto: true, HasMetric: true}},
	} {
		got, err := route.ParseSelector(strings.Fields(tt.in), tt.family)
		if err != nil || got != tt.want {
			t.Errorf("ParseSelector(%q, %d) = %+v, %v; want %+v", tt.in, tt.family, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		in           string
		family       int
		field, value string
	}{
		{"foo", 0, "keyword", "foo"},
		{"table", 0, "table", "table"},
		{"table 0", 0, "table", "0"},
		{"table x", 0, "table", "x"},
		{"table 5 table 6", 0, "table", "6"},
		{"10.0.0.0/8 root 10.0.0.0/16", 0, "prefix", "10.0.0.0/16"},
		{"10.0.0.1/8", 0, "prefix", "10.0.0.1/8"},
		{"match", 0, "prefix", "match"},
		{"root x", 0, "prefix", "x"},
		{"2001:db8::/32", 4, "prefix", "2001:db8::/32"},
		{"10.0.0.0/8", 6, "prefix", "10.0.0.0/8"},
		{"dev abcdefghijklmnop", 0, "dev", "abcdefghijklmnop"},
		{"via x", 0, "via", "x"},
		{"via inet6 192.0.2.1", 0, "via", "192.0.2.1"},
		{"proto nosuch", 0, "proto", "nosuch"},
		{"type broadcast", 0, "type", "broadcast"},
		{"metric -1", 0, "metric", "-1"},
		{"metric", 0, "metric", "metric"},
	} {
		_, err := route.ParseSelector(strings.Fields(tt.in), tt.family)
		var fe *route.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || fe.Value != tt.value {
			t.Errorf("ParseSelector(%q, %d) error = %v, want field %q value %q", tt.in, tt.family, err, tt.field, tt.value)
		}
	}
}

func TestAppendJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // as ip -j prints it
	}{
		{"default via 10.0.0.1 dev d0 proto boot", `{"dst":"default","gateway":"10.0.0.1","dev":"d0","flags":[]}`},
		{"203.0.115.0/24 via 10.0.0.1 dev d0 table 100 proto boot", `{"dst":"203.0.115.0/24","gateway":"10.0.0.1","dev":"d0","table":"100","flags":[]}`},
		{"172.20.0.0/16 via 10.0.0.1 dev d0 table default proto 77", `{"dst":"172.20.0.0/16","gateway":"10.0.0.1","dev":"d0","table":"default","protocol":"77","flags":[]}`},
		{"10.9.9.9 via 10.0.0.1 dev d0 proto boot", `{"dst":"10.9.9.9","gateway":"10.0.0.1","dev":"d0","flags":[]}`},
		{"blackhole 172.16.5.0/24 proto bgp metric 5", `{"type":"blackhole","dst":"172.16.5.0/24","protocol":"bgp","metric":5,"flags":[]}`},
		{"172.21.0.0/16 via inet6 2001:db8::1 dev d0 proto boot", `{"dst":"172.21.0.0/16","via":{"family":"inet6","host":"2001:db8::1"},"dev":"d0","flags":[]}`},
		{"172.24.0.0/16 dev d0 proto ospf src 10.0.0.2 metric 3", `{"dst":"172.24.0.0/16","dev":"d0","protocol":"ospf","prefsrc":"10.0.0.2","metric":3,"flags":[]}`},
		{"172.18.0.0/16 table 100 proto bgp metric 7 nexthop via 10.0.0.1 dev d0 weight 1 nexthop via 10.1.0.1 dev d1 weight 3",
			`{"dst":"172.18.0.0/16","table":"100","protocol":"bgp","metric":7,"flags":[],"nexthops":[{"gateway":"10.0.0.1","dev":"d0","weight":1,"flags":[]},{"gateway":"10.1.0.1","dev":"d1","weight":3,"flags":[]}]}`},
		{"172.28.0.0/16 proto boot nexthop via inet6 2001:db8::1 dev d0 nexthop dev d1",
			`{"dst":"172.28.0.0/16","flags":[],"nexthops":[{"via":{"family":"inet6","host":"2001:db8::1"},"dev":"d0","weight":1,"flags":[]},{"dev":"d1","weight":1,"flags":[]}]}`},
		{`10.0.0.0/8 dev a"\b`, `{"dst":"10.0.0.0/8","dev":"a\"\\b","protocol":"static","flags":[]}`},
	} {
		r, _, err := route.ParseLine(tt.in)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", tt.in, err)
		}
		got := string(r.AppendJSON(nil))
		if got != tt.want {
			t.Errorf("AppendJSON(%q) =\n%s, want\n%s", tt.in, got, tt.want)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Errorf("AppendJSON(%q) = %s: not JSON: %v", tt.in, got, err)
		} else if v["dst"] == nil || v["flags"] == nil {
			t.Errorf("AppendJSON(%q) = %s: no dst or flags", tt.in, got)
		}
	}
	// Random routes decode to what they are.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		r := randRoute(rng)
		b := r.AppendJSON(nil)
		var v struct {
			Type, Dst, Gateway, Dev, Table, Protocol string
			Metric                                   uint32
			Flags                                    []string
			Nexthops                                 []struct {
				Gateway, Dev string
				Via          struct{ Family, Host string }
				Weight       uint16
			}
			Via struct{ Family, Host string }
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("AppendJSON(%v) = %s: %v", r, b, err)
		}
		wantType := r.Type.String()
		if r.Type == route.Unicast {
			wantType = ""
		}
		if v.Type != wantType || v.Metric != r.Metric || v.Flags == nil ||
			(r.Table == route.TableMain) != (v.Table == "") || len(r.Hops) > 1 && len(v.Nexthops) != len(r.Hops) {
			t.Fatalf("AppendJSON(%v) = %s", r, b)
		}
		for i, h := range v.Nexthops {
			gw := h.Gateway + h.Via.Host
			if gw != addrString(r.Hops[i].Gateway) || h.Dev != r.Hops[i].Dev || h.Weight != r.Hops[i].Weight {
				t.Fatalf("AppendJSON(%v) = %s: next hop %d", r, b, i)
			}
		}
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func BenchmarkParseLine(b *testing.B) {
	for _, bm := range []struct{ name, line string }{
		{"fast", "10.20.30.0/24 via 192.0.2.1 dev eth0 proto static"},
		{"general", "10.20.30.0/24 via 192.0.2.1 dev eth0 proto bgp"},
		{"ecmp", "10.20.30.0/24 proto bgp nexthop via 192.0.2.1 dev eth0 weight 2 nexthop via 192.0.2.2 dev eth1"},
		{"ipv6", "2001:db8:1::/48 via fe80::1 dev eth0 proto static metric 1024"},
	} {
		b.Run(bm.name+"/Into", func(b *testing.B) {
			var r route.Route
			opt := route.ParseOptions{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := opt.ParseLineInto(&r, bm.line); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bm.name+"/ParseLine", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := route.ParseLine(bm.line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendText(b *testing.B) {
	r, _, _ := route.ParseLine("10.20.30.0/24 via 192.0.2.1 dev eth0 proto static metric 10")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendText(buf[:0])
	}
}
