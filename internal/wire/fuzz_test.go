package wire_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

func seedChanges() []byte {
	var w wire.ChangeWriter
	for i, r := range sampleRoutes() {
		w.Add(uint64(1+2*i), wire.OpAdd, r)
		w.Add(uint64(2+2*i), wire.OpDel, r)
	}
	w.AddMAC(uint64(1+2*len(sampleRoutes())), wire.OpMACAdd, mac.Addr{2, 0, 0, 0, 0, 1}, 3, netip.MustParseAddr("10.0.0.1"), "eth0")
	return bytes.Join(w.Take(), nil)[wire.HeaderLen:]
}

// FuzzChanges checks that the Changes decoder never panics, accepts only
// valid routes, and that what it accepts encodes back to the same bytes.
func FuzzChanges(f *testing.F) {
	f.Add(seedChanges())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 4, 33, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 9, 0, 0, 0, 4, 10, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6})
	f.Fuzz(func(t *testing.T, p []byte) {
		var d wire.Decoder
		var got []wire.Change
		err := d.Changes(p, func(c wire.Change) { got = append(got, c) })
		if err != nil {
			return
		}
		var w wire.ChangeWriter
		for _, c := range got {
			switch c.Op {
			case wire.OpMACAdd, wire.OpMACChange, wire.OpMACDel:
				w.AddMAC(c.Seq, c.Op, c.MAC, c.Slot, c.IP, c.Dev)
				continue
			case wire.OpFlush:
				w.AddFlush(c.Seq)
				continue
			case wire.OpAdd, wire.OpChange:
				if err := c.Route.Validate(); err != nil {
					t.Fatalf("decoded invalid route %v: %v", c.Route, err)
				}
			}
			w.Add(c.Seq, c.Op, c.Route)
		}
		if len(got) == 0 {
			return
		}
		if re := bytes.Join(w.Take(), nil)[wire.HeaderLen:]; !bytes.Equal(re, p) {
			t.Fatalf("re-encoded %x, want %x", re, p)
		}
	})
}

// FuzzRoutes does the same for Snapshot payloads and load chunks.
func FuzzRoutes(f *testing.F) {
	w := wire.RouteWriter{Typ: wire.TSnapshot}
	for _, r := range sampleRoutes() {
		w.Add(r)
	}
	f.Add(w.Flush()[wire.HeaderLen:])
	f.Fuzz(func(t *testing.T, p []byte) {
		var d wire.Decoder
		w := wire.RouteWriter{Typ: wire.TSnapshot}
		n := 0
		err := d.Routes(p, func(r route.Route) {
			if err := r.Validate(); err != nil {
				t.Fatalf("decoded invalid route %v: %v", r, err)
			}
			w.Add(r)
			n++
		})
		if err != nil || n == 0 {
			return
		}
		if re := w.Flush()[wire.HeaderLen:]; !bytes.Equal(re, p) {
			t.Fatalf("re-encoded %x, want %x", re, p)
		}
	})
}

// FuzzHello checks the handshake decoder.
func FuzzHello(f *testing.F) {
	f.Add(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "rtm"})[wire.HeaderLen:])
	f.Add([]byte("RTM\x00\x01\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := wire.DecodeHello(p)
		if err != nil {
			return
		}
		if re := wire.AppendHello(nil, h)[wire.HeaderLen:]; !bytes.Equal(re, p) {
			t.Fatalf("re-encoded %x, want %x", re, p)
		}
	})
}

// FuzzReader feeds arbitrary bytes to the frame reader and to the decoder
// of each frame it finds, as rtmd's connection reader does.
func FuzzReader(f *testing.F) {
	f.Add(append(wire.AppendHello(nil, wire.Hello{Version: wire.Version}), wire.AppendRequest(nil, 1, wire.KAdd, wire.AppendRoute(nil, sampleRoutes()[0]))...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := wire.NewReader(bytes.NewReader(b))
		var d wire.Decoder
		for {
			typ, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			if len(p) > wire.MaxPayload {
				t.Fatalf("payload of %d bytes", len(p))
			}
			d.Reset(p)
			switch typ {
			case wire.THello:
				wire.DecodeHello(p)
			case wire.TRequest:
				d.U32("id")
				d.U8("kind")
				d.Route()
				d.Finish()
			case wire.TChanges:
				d.Changes(p, func(wire.Change) {})
			case wire.TSnapshot:
				d.Routes(p, func(route.Route) {})
			case wire.TMACSeg:
				d.MACSeg(p)
			case wire.TSnapMACs:
				d.MACSlots(p, func(mac.Addr, uint32, string) {})
			}
		}
	})
}

// FuzzSelector checks the selector decoder: it never panics, accepts only
// valid selectors, and what it accepts encodes back to the same bytes.
func FuzzSelector(f *testing.F) {
	for _, s := range sampleSelectors() {
		f.Add(wire.AppendSelector(nil, s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var d wire.Decoder
		d.Reset(p)
		s := d.Selector()
		if d.Finish() != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("decoded invalid selector %+v: %v", s, err)
		}
		if re := wire.AppendSelector(nil, s); !bytes.Equal(re, p) {
			t.Fatalf("re-encoded %x, want %x", re, p)
		}
	})
}
