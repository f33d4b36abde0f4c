package wire_test

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// simple returns a unicast route in the main table through one next hop.
func simple(dst, gw, dev string) route.Route {
	var g netip.Addr
	if gw != "" {
		g = netip.MustParseAddr(gw)
	}
	return route.Simple(netip.MustParsePrefix(dst), g, dev)
}

// sampleRoutes returns one route of each shape the encoding has.
func sampleRoutes() []route.Route {
	ecmp := simple("10.1.0.0/16", "10.0.0.1", "eth0")
	ecmp.Table, ecmp.Proto, ecmp.Metric = 100, route.ProtoBGP, 20
	ecmp.Src = netip.MustParseAddr("10.0.0.9")
	ecmp.Hops = []route.NextHop{
		{Gateway: netip.MustParseAddr("10.0.0.1"), Dev: "eth0", Weight: 2},
		{Gateway: netip.MustParseAddr("fe80::1"), Dev: "eth1", Weight: 256},
		{Dev: "eth2", Weight: 1},
	}
	bh := route.Route{Table: route.TableMain, Dst: netip.MustParsePrefix("192.0.2.0/24"),
		Attrs: route.Attrs{Type: route.Blackhole, Proto: route.ProtoStatic}}
	local := route.Route{Table: route.TableLocal, Dst: netip.MustParsePrefix("127.0.0.1/32"),
		Attrs: route.Attrs{Type: route.Local, Proto: route.ProtoKernel, Hops: []route.NextHop{{Dev: "lo", Weight: 1}}}}
	return []route.Route{
		simple("10.0.0.0/24", "10.1.1.1", "eth0"),
		simple("2001:db8::/32", "fe80::1", "eth1"),
		simple("0.0.0.0/0", "", "wg0"),
		ecmp, bh, local,
	}
}

// sampleSelectors returns selectors with each field.
func sampleSelectors() []route.Selector {
	return []route.Selector{
		{},
		{Table: route.TableMain, Mode: route.Exact, Prefix: netip.MustParsePrefix("10.0.0.0/8")},
		{Table: 100, Mode: route.Root, Prefix: netip.MustParsePrefix("2001:db8::/32"), Dev: "eth0",
			Via: netip.MustParseAddr("fe80::1"), Proto: route.ProtoBGP, HasProto: true,
			Type: route.Unicast, Metric: 0, HasMetric: true},
		{Mode: route.Match, Prefix: netip.MustParsePrefix("10.1.2.3/32")},
	}
}

// TestGolden pins the byte layout that docs/protocol.md describes.
func TestGolden(t *testing.T) {
	var w wire.ChangeWriter
	w.Add(7, wire.OpAdd, simple("10.0.0.0/24", "10.1.1.1", "eth0"))
	w.Add(8, wire.OpDel, route.Route{Table: 100, Dst: netip.MustParsePrefix("2001:db8::/32")})
	ecmp := sampleRoutes()[3]
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"hello", wire.AppendHello(nil, wire.Hello{Version: 2, Name: "ab"}), "0a000000 01 52544d00 0200 0200 6162"},
		{"changes", bytes.Join(w.Take(), nil), "37000000 09 0700000000000000 02000000" +
			"01 04 18 0a000000 00 01 04 0a010101 00 04 65746830" +
			"03 64000000 06 20 20010db8000000000000000000000000"},
		{"route", wire.AppendRoute(nil, ecmp), "04 10 0a010000 1d 64000000 ba 14000000 04 0a000009 03" +
			"04 0a000001 01 04 65746830" +
			"06 fe800000000000000000000000000001 ff 04 65746831" +
			"00 00 04 65746832"},
		{"request del", wire.AppendRequest(nil, 5, wire.KDel, wire.AppendSelector(nil, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: netip.MustParsePrefix("10.0.0.0/8"), Dev: "e"})),
			"13000000 04 05000000 04 fe000000 01 04 08 0a000000 01 01 65"},
		{"mac changes", macChanges(), "28000000 09 0900000000000000 02000000" +
			"04 02005e100001 03000000 04 0a000009 04 65746830" +
			"06 02005e100001"},
		{"synced", wire.AppendSynced(nil, 258), "08000000 08 0201000000000000"},
		{"snapbegin", wire.AppendSnapBegin(nil, 1, wire.ReasonBacklog, 2), "11000000 06 0100000000000000 01 0200000000000000"},
	}
	for _, tt := range tests {
		want, err := hex.DecodeString(stripSpaces(tt.want))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tt.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", tt.name, tt.got, want)
		}
	}
}

// macChanges is a MAC add (slot 3, IP 10.0.0.9, dev eth0) and its delete.
func macChanges() []byte {
	var w wire.ChangeWriter
	m := mac.Addr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	w.AddMAC(9, wire.OpMACAdd, m, 3, netip.MustParseAddr("10.0.0.9"), "eth0")
	w.AddMAC(10, wire.OpMACDel, m, 0, netip.Addr{}, "")
	return bytes.Join(w.Take(), nil)
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

func TestChangesRoundTrip(t *testing.T) {
	in := []wire.Change{
		{Seq: 1, Op: wire.OpAdd, Route: simple("10.0.0.0/8", "10.1.1.1", "eth0")},
		{Seq: 2, Op: wire.OpChange, Route: sampleRoutes()[3]},
		{Seq: 3, Op: wire.OpDel, Route: route.Route{Table: route.TableMain, Dst: netip.MustParsePrefix("10.0.0.0/8")}},
	}
	var w wire.ChangeWriter
	// Enough records to need several frames.
	for i := range 20000 {
		c := in[i%3]
		w.Add(uint64(i+1), c.Op, c.Route)
	}
	b := bytes.Join(w.Take(), nil)
	r := wire.NewReader(bytes.NewReader(b))
	var d wire.Decoder
	n, frames := 0, 0
	for {
		typ, p, err := r.ReadFrame()
		if err != nil {
			break
		}
		frames++
		if typ != wire.TChanges || len(p) > 70<<10 {
			t.Fatalf("frame %d: type %d, %d bytes", frames, typ, len(p))
		}
		err = d.Changes(p, func(c wire.Change) {
			want := in[n%3]
			want.Seq = uint64(n + 1)
			if c.Seq != want.Seq || c.Op != want.Op || !c.Route.Equal(&want.Route) {
				t.Fatalf("change %d = %+v, want %+v", n, c, want)
			}
			n++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 20000 || frames < 2 {
		t.Errorf("decoded %d changes in %d frames, want 20000 in several", n, frames)
	}
}

func TestReaderLimits(t *testing.T) {
	big := wire.AppendFrame(nil, wire.TRequest, make([]byte, wire.MaxPayload+1))
	if _, _, err := wire.NewReader(bytes.NewReader(big)).ReadFrame(); err == nil {
		t.Error("ReadFrame accepted a frame over MaxPayload")
	}
	short := wire.AppendFrame(nil, wire.TRequest, make([]byte, 10))[:12]
	if _, _, err := wire.NewReader(bytes.NewReader(short)).ReadFrame(); err == nil {
		t.Error("ReadFrame accepted a truncated frame")
	}
}

// TestDecoderChecksEveryDev checks that the decoder's cache of the last
// interface name does not let an invalid one through.
func TestDecoderChecksEveryDev(t *testing.T) {
	good := wire.AppendRoute(nil, simple("10.0.0.0/8", "1.1.1.1", "eth0"))
	for _, bad := range [][]byte{
		append([]byte{4, 8, 10, 0, 0, 0, 0, 1, 4, 1, 1, 1, 1, 0, 16}, "0123456789abcdef"...),
		{4, 8, 10, 0, 0, 0, 0, 1, 4, 1, 1, 1, 1, 0, 2, 'a', ' '},
	} {
		p := append([]byte{2, 0, 0, 0}, good...)
		p = append(p, bad...)
		var d wire.Decoder
		if err := d.Routes(p, func(route.Route) {}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("dev")) {
			t.Errorf("Routes(%x) = %v, want a dev error", p, err)
		}
	}
}

func TestHelloName(t *testing.T) {
	long := strings.Repeat("é", 100)
	for _, tc := range []struct {
		name, wantErr string
	}{
		{"rtm", ""},
		{strings.Repeat("x", wire.MaxNameLen), ""},
		{strings.Repeat("x", wire.MaxNameLen+1), "name at byte 6: 129 bytes, limit 128"},
		{"a\x00b", "unprintable character U+0000"},
		{"bell\a", "unprintable character U+0007"},
		{wire.CleanName(long), ""},
		{wire.CleanName("a\x00b\nc"), ""},
	} {
		_, err := wire.DecodeHello(wire.AppendHello(nil, wire.Hello{Version: 1, Name: tc.name})[wire.HeaderLen:])
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("DecodeHello(name %q) = %v, want error %q", tc.name, err, tc.wantErr)
		}
	}
	if got := wire.CleanName("a\x00b\nc"); got != "a?b?c" {
		t.Errorf("CleanName = %q, want a?b?c", got)
	}
	if got := wire.CleanName(long); len(got) != 128 || !strings.HasPrefix(long, got) {
		t.Errorf("CleanName(100 × é) = %d bytes, want 128, a prefix", len(got))
	}
}
