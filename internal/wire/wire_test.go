package wire_test

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

func mustRoute(s string) route.Route {
	r, err := route.ParseLine(s)
	if err != nil {
		panic(err)
	}
	return r
}

// TestGolden pins the byte layout that docs/protocol.md describes.
func TestGolden(t *testing.T) {
	var w wire.ChangeWriter
	w.Add(7, wire.OpAdd, mustRoute("10.0.0.0/24 via 10.1.1.1 dev eth0"))
	w.Add(8, wire.OpDel, mustRoute("2001:db8::/32 via ::1 dev x"))
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"hello", wire.AppendHello(nil, wire.Hello{Version: 1, Name: "ab"}), "0a000000 01 52544d00 0100 0200 6162"},
		{"changes", bytes.Join(w.Take(), nil), "2f000000 09 0700000000000000 02000000" +
			"01 04 18 0a000000 0a010101 04 65746830" +
			"03 06 20 20010db8000000000000000000000000"},
		{"request del", wire.AppendRequest(nil, 5, wire.KDel, wire.AppendPrefix(nil, netip.MustParsePrefix("10.0.0.0/8"))), "0b000000 04 05000000 04 04 08 0a000000"},
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

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

func TestChangesRoundTrip(t *testing.T) {
	in := []wire.Change{
		{Seq: 1, Op: wire.OpAdd, Route: mustRoute("10.0.0.0/8 via 10.1.1.1 dev eth0")},
		{Seq: 2, Op: wire.OpChange, Route: mustRoute("::/0 via fe80::1 dev eth1")},
		{Seq: 3, Op: wire.OpDel, Route: route.Route{Dst: netip.MustParsePrefix("10.0.0.0/8")}},
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
			if c != want {
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
	good := wire.AppendRoute(nil, mustRoute("10.0.0.0/8 via 1.1.1.1 dev eth0"))
	for _, bad := range [][]byte{
		{4, 8, 10, 0, 0, 0, 1, 1, 1, 1, 0},
		{4, 8, 10, 0, 0, 0, 1, 1, 1, 1, 2, 'a', ' '},
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
