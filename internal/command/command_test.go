package command_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/route"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		verb command.Verb
		err  string
	}{
		{"route add 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteAdd, ""},
		{"r a 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteAdd, ""},
		{"route add default via 1.1.1.1", command.RouteAdd, ""},
		{"route add 10.0.0.0/8 dev eth0 metric 100 proto bgp table 7", command.RouteAdd, ""},
		{"route add blackhole 10.0.0.0/8", command.RouteAdd, ""},
		{"route add 10.0.0.0/8 nexthop via 1.1.1.1 dev a weight 2 nexthop via 1.1.1.2 dev b", command.RouteAdd, ""},
		{"route c 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteChange, ""},
		{"route rep 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteReplace, ""},
		{"route del 10.0.0.0/8", command.RouteDel, ""},
		{"route delete 10.0.0.0/8 table 5 via 1.1.1.1 dev e proto bgp metric 3", command.RouteDel, ""},
		{"route del blackhole 10.0.0.0/8", command.RouteDel, ""},
		{"route del default", command.RouteDel, ""},
		{"route", command.RouteShow, ""},
		{"route show -j", command.RouteShow, ""},
		{"route show 10.0.0.0/8", command.RouteShow, ""},
		{"route show root 10.0.0.0/8 table all dev eth0 -o", command.RouteShow, ""},
		{"route show match 10.1.1.1 via 1.1.1.1 proto bgp type unicast metric 5", command.RouteShow, ""},
		{"route list", command.RouteShow, ""},
		{"route get 10.1.1.1", command.RouteGet, ""},
		{"route get 10.1.1.1 table 100 -j", command.RouteGet, ""},
		{"route load -", command.RouteLoad, ""},
		{"route flush table all", command.RouteFlush, ""},
		{"route flush dev eth0", command.RouteFlush, ""},
		{"route flush root 10.0.0.0/8", command.RouteFlush, ""},
		{"flush all", command.Flush, ""},
		{"mac add 00:11:22:33:44:55 10.0.0.1", command.MACAdd, ""},
		{"mac add 00:11:22:33:44:55 10.0.0.1 dev eth0", command.MACAdd, ""},
		{"mac rep 00:11:22:33:44:55 10.0.0.1 dev eth0", command.MACReplace, ""},
		{"mac del 00:11:22:33:44:55", command.MACDel, ""},
		{"mac", command.MACShow, ""},
		{"monitor -j --follow", command.Monitor, ""},
		{"client", command.Client, ""},
		{"-6 route show default", command.RouteShow, ""},

		{"", 0, "missing command"},
		{"frob", 0, `unknown command "frob"`},
		{"route d 10.0.0.0/8", 0, `ambiguous route command "d"`},
		{"route del", 0, "dst"},
		{"route del root 10.0.0.0/8", 0, "route del takes one prefix"},
		{"route del 10.0.0.0/8 table all", 0, "route flush takes table all"},
		{"route del 10.0.0.0/8 frob", 0, `"frob"`},
		{"route add 10.0.0.0/8 via 1.1.1.1 frob", 0, `"frob"`},
		{"route add 10.0.0.1/8 via 1.1.1.1", 0, "10.0.0.0/8"},
		{"route add 10.0.0.0/8 dev eth0 scope link", 0, `invalid keyword "scope": not kept by rtm`},
		{"route replace 10.0.0.0/8 dev eth0 mtu lock 1400", 0, `invalid keyword "mtu"`},
		{"route change 10.0.0.0/8 nexthop dev eth0 onlink", 0, `invalid keyword "onlink"`},
		{"route add 10.0.0.0/8 via 1.1.1.1 metric x", 0, `"x"`},
		{"route show -x", 0, `"-x"`},
		{"route show frob", 0, `"frob"`},
		{"route show table x", 0, `"x"`},
		{"route get", 0, "missing"},
		{"route get 10.0.0.0/8", 0, `"10.0.0.0/8"`},
		{"route get 10.0.0.1 table", 0, "table"},
		{"route get 10.0.0.1 10.0.0.2", 0, `"10.0.0.2"`},
		{"route load a b", 0, "want one FILE"},
		{"route flush", 0, "give a SELECTOR"},
		{"route flush -j", 0, `"-j"`},
		{"flush", 0, `spell it "flush all"`},
		{"flush now", 0, `"now"`},
		{"flush all now", 0, `"now"`},
		{"mac add 00:11:22:33:44:55", 0, "missing IP"},
		{"mac add 00:11:22:33:44:55 10.0.0.1 dev", 0, "dev"},
		{"mac add 00:11:22:33:44:55 10.0.0.1 dev a/b", 0, "a/b"},
		{"mac add 00:11:22:33:44:55 10.0.0.1 eth0", 0, `"eth0"`},
		{"monitor now", 0, `unknown argument "now"`},
		{"client x", 0, `unexpected argument "x"`},
		{"-4 route show ::/0", 0, "::/0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := command.ParseLine(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseLine(%q) = %v, %v; want error containing %q", tt.in, c.Verb, err, tt.err)
				}
				return
			}
			if err != nil || c.Verb != tt.verb {
				t.Errorf("ParseLine(%q) = %v, %v; want %v", tt.in, c.Verb, err, tt.verb)
			}
			// The words parse as the line does.
			c2, err := command.Parse(strings.Fields(tt.in))
			if err != nil || c2.Verb != c.Verb || !c2.Route.Equal(&c.Route) || c2.Sel != c.Sel {
				t.Errorf("Parse(%q) = %+v, %v; ParseLine gave %+v", tt.in, c2, err, c)
			}
		})
	}
}

// TestNoAbbreviatedFlush checks that no abbreviation reaches a flush, and
// that the errors say how to spell it.
func TestNoAbbreviatedFlush(t *testing.T) {
	for _, in := range []string{"f", "fl", "flu", "flus", "f all", "fl all", "route f table all",
		"route fl table all", "route flus table all", "r f", "flush", "f a", "route fl"} {
		c, err := command.ParseLine(in)
		if err == nil {
			t.Errorf("ParseLine(%q) = %v, want an error", in, c.Verb)
			continue
		}
		if !strings.Contains(err.Error(), "spell") {
			t.Errorf("ParseLine(%q) error %q does not say to spell it out", in, err)
		}
	}
}

func TestParseFields(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	tests := []struct {
		in   string
		want command.Command
	}{
		{"route add 10.0.0.0/8 via 192.0.2.1 dev eth0 metric 5",
			command.Command{Verb: command.RouteAdd, Route: route.Route{Table: route.TableMain, Dst: p("10.0.0.0/8"),
				Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Metric: 5,
					Hops: []route.NextHop{{Gateway: a("192.0.2.1"), Dev: "eth0", Weight: 1}}}}}},
		{"-6 route add default dev eth0",
			command.Command{Verb: command.RouteAdd, Route: route.Route{Table: route.TableMain, Dst: p("::/0"),
				Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Hops: []route.NextHop{{Dev: "eth0", Weight: 1}}}}}},
		{"route del prohibit 10.0.0.0/8 table 7 dev eth0",
			command.Command{Verb: command.RouteDel, Sel: route.Selector{Table: 7, Mode: route.Exact, Prefix: p("10.0.0.0/8"),
				Dev: "eth0", Type: route.Prohibit}}},
		{"route show",
			command.Command{Verb: command.RouteShow, Sel: route.Selector{Table: route.TableMain}}},
		{"route show table all -j",
			command.Command{Verb: command.RouteShow, JSON: true, Sel: route.Selector{}}},
		{"route show -o root 10.0.0.0/8 proto bgp",
			command.Command{Verb: command.RouteShow, Oneline: true, Sel: route.Selector{Table: route.TableMain,
				Mode: route.Root, Prefix: p("10.0.0.0/8"), Proto: route.ProtoBGP, HasProto: true}}},
		{"route flush match 10.1.2.3 table all",
			command.Command{Verb: command.RouteFlush, Sel: route.Selector{Mode: route.Match, Prefix: p("10.1.2.3/32")}}},
		{"-6 route show table all",
			command.Command{Verb: command.RouteShow, Sel: route.Selector{Mode: route.Root, Prefix: p("::/0")}}},
		{"-4 route flush dev eth0",
			command.Command{Verb: command.RouteFlush, Sel: route.Selector{Table: route.TableMain, Mode: route.Root, Prefix: p("0.0.0.0/0"), Dev: "eth0"}}},
		{"-6 route show default",
			command.Command{Verb: command.RouteShow, Sel: route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: p("::/0")}}},
		{"route get 10.1.2.3 table local",
			command.Command{Verb: command.RouteGet, Table: route.TableLocal, Addr: a("10.1.2.3")}},
		{"mac add 00:11:22:33:44:55 10.0.0.1 dev eth0",
			command.Command{Verb: command.MACAdd, MAC: [6]byte{0, 0x11, 0x22, 0x33, 0x44, 0x55}, Addr: a("10.0.0.1"), Dev: "eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := command.ParseLine(tt.in)
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.in, err)
			}
			if got.Verb != tt.want.Verb || !got.Route.Equal(&tt.want.Route) || got.Sel != tt.want.Sel ||
				got.Table != tt.want.Table || got.Addr != tt.want.Addr ||
				got.MAC != tt.want.MAC || got.Dev != tt.want.Dev || got.JSON != tt.want.JSON || got.Oneline != tt.want.Oneline {
				t.Errorf("ParseLine(%q) =\n%+v, want\n%+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMACLine(t *testing.T) {
	m, ip, dev, err := command.ParseMACLine("00:11:22:33:44:55 10.0.0.1 dev eth0")
	if err != nil || ip != netip.MustParseAddr("10.0.0.1") || dev != "eth0" ||
		string(command.AppendMACText(nil, m, ip, dev)) != "00:11:22:33:44:55 10.0.0.1 dev eth0" {
		t.Errorf("ParseMACLine = %v %v %q %v", m, ip, dev, err)
	}
	if _, _, _, err := command.ParseMACLine("00:11:22:33:44:55 10.0.0.1 eth0"); err == nil || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("ParseMACLine with a bare interface: %v, want an error naming it", err)
	}
}

func TestEventJSON(t *testing.T) {
	r, _, err := route.ParseLine("10.0.0.0/8 via 192.0.2.1 dev eth0 table 7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ got, want string }{
		{string(command.AppendEventJSON(nil, 3, "add", r)),
			`{"seq":3,"op":"add","kind":"route",` + string(r.AppendJSON(nil))[1:]},
		{string(command.AppendEventJSON(nil, 4, "del", r)), `{"seq":4,"op":"del","kind":"route","dst":"10.0.0.0/8","table":"7"}`},
		{string(command.AppendEventJSON(nil, 5, "synced", route.Route{})), `{"seq":5,"op":"synced"}`},
		{string(command.AppendEventJSON(nil, 6, "reset", route.Route{})), `{"seq":6,"op":"reset","reason":"history"}`},
		{string(command.AppendMACEventJSON(nil, 6, "add", [6]byte{1, 2, 3, 4, 5, 6}, netip.MustParseAddr("10.0.0.1"), "eth0")),
			`{"seq":6,"op":"add","kind":"mac","dst":"10.0.0.1","dev":"eth0","lladdr":"01:02:03:04:05:06"}`},
		{string(command.AppendMACEventJSON(nil, 7, "del", [6]byte{1, 2, 3, 4, 5, 6}, netip.MustParseAddr("10.0.0.1"), "")),
			`{"seq":7,"op":"del","kind":"mac","lladdr":"01:02:03:04:05:06"}`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
}

// FuzzParse checks that no command line crashes the parser, that a parsed
// change carries a valid route, that a selector is valid, that the line
// and its words parse alike, and that no flush is reached unless spelt out.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"route add 10.0.0.0/8 via 1.1.1.1 dev e", "route del ::/0", "monitor -j",
		"route add default nexthop via 1.1.1.1 dev a weight 3 nexthop dev b",
		"route show root 10.0.0.0/8 table all -j", "route flush proto bgp", "flush all",
		"-6 route del default table 5", "mac add 00:11:22:33:44:55 ::1 dev x", "route get 1.2.3.4 table 9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := command.ParseLine(line)
		words := strings.Fields(line)
		c2, err2 := command.Parse(words)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("ParseLine(%q) error %v, Parse of its words %v", line, err, err2)
		}
		if err != nil {
			return
		}
		if c.Verb != c2.Verb || !c.Route.Equal(&c2.Route) || c.Sel != c2.Sel {
			t.Fatalf("ParseLine(%q) = %+v, Parse of its words %+v", line, c, c2)
		}
		switch c.Verb {
		case command.RouteAdd, command.RouteChange, command.RouteReplace:
			if err := c.Route.Validate(); err != nil {
				t.Fatalf("ParseLine(%q) gave invalid route %v: %v", line, c.Route, err)
			}
		case command.RouteDel, command.RouteShow, command.RouteFlush:
			if err := c.Sel.Validate(); err != nil {
				t.Fatalf("ParseLine(%q) gave invalid selector %+v: %v", line, c.Sel, err)
			}
		case command.Flush:
			if i := indexFlush(words); i < 0 || i+1 >= len(words) || words[i+1] != "all" {
				t.Fatalf("ParseLine(%q) is a flush of everything, not spelt flush all", line)
			}
		}
		if c.Verb == command.RouteFlush && indexFlush(words) < 0 {
			t.Fatalf("ParseLine(%q) is a route flush without the word flush", line)
		}
	})
}

func indexFlush(words []string) int {
	for i, w := range words {
		if w == "flush" {
			return i
		}
	}
	return -1
}

func TestRouteWriter(t *testing.T) {
	r1, _, _ := route.ParseLine("10.0.0.0/8 via 192.0.2.1 dev eth0")
	r2, _, _ := route.ParseLine("10.2.0.0/16 nexthop via 192.0.2.1 dev eth0 weight 2 nexthop dev eth1")
	tests := []struct {
		json, oneline bool
		routes        []route.Route
		want          string
	}{
		{false, false, []route.Route{r1, r2}, r1.String() + "\n" + r2.String() + "\n"},
		{false, true, []route.Route{r1, r2}, string(r1.AppendLine(nil)) + "\n" + string(r2.AppendLine(nil)) + "\n"},
		{true, false, []route.Route{r1, r2}, "[" + string(r1.AppendJSON(nil)) + "," + string(r2.AppendJSON(nil)) + "]\n"},
		{true, true, nil, "[]\n"},
		{false, false, nil, ""},
	}
	for _, tt := range tests {
		var b strings.Builder
		rw := command.RouteWriter{W: &b, JSON: tt.json, Oneline: tt.oneline}
		for _, r := range tt.routes {
			rw.Route(r)
		}
		rw.Close()
		if b.String() != tt.want {
			t.Errorf("RouteWriter{JSON: %v, Oneline: %v} wrote %q, want %q", tt.json, tt.oneline, b.String(), tt.want)
		}
	}
	if !strings.Contains(r2.String(), "\n\tnexthop") || strings.Contains(string(r2.AppendLine(nil)), "\n") {
		t.Errorf("multipath text %q, one line %q", r2.String(), r2.AppendLine(nil))
	}
}
