package client

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// TestFlushSignalOrder applies a flush's signal before and after the
// stream brings the flush, and checks that the mirror ends as rtmd does
// either way: an early signal empties it at once and the stream's changes
// up to the flush are skipped; a late signal changes nothing.
func TestFlushSignalOrder(t *testing.T) {
	name := fmt.Sprintf("rtm-test-%d-flush", os.Getpid())
	seg, err := shm.Create(name, 4, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unlink(seg.Name)
	defer seg.Close()
	r1 := route.Simple(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("10.1.1.1"), "a")
	r2 := route.Simple(netip.MustParsePrefix("10.2.0.0/16"), netip.MustParseAddr("10.1.1.1"), "a")
	r3 := route.Simple(netip.MustParsePrefix("10.3.0.0/16"), netip.MustParseAddr("10.1.1.1"), "a")
	// rtmd: seq 1 add r1, 2 add r2, 3 flush, 4 add r3.
	var w wire.ChangeWriter
	w.Add(2, wire.OpAdd, r2)
	w.AddFlush(3)
	w.Add(4, wire.OpAdd, r3)
	frames := w.Take()
	payload := frames[0][wire.HeaderLen:]
	seg.SetFlush(3)

	for _, early := range []bool{true, false} {
		v, err := shm.Open(seg.Name, uint32(os.Geteuid()))
		if err != nil {
			t.Fatal(err)
		}
		var m Mirror
		m.init()
		m.table.Set(&r1)
		m.seq, m.synced = 1, true
		m.seg.Store(newSegRef(v, nil))
		var d wire.Decoder
		if early {
			m.flushSignalled()
			if m.table.Len() != 0 {
				t.Fatal("early signal did not empty the mirror")
			}
		}
		if err := m.applyChanges(&d, payload); err != nil {
			t.Fatalf("early=%v: %v", early, err)
		}
		if !early {
			m.flushSignalled() // late: must not wipe r3
		}
		routes := m.Routes()
		if len(routes) != 1 || routes[0].String() != r3.String() || m.seq != 4 {
			t.Errorf("early=%v: mirror at seq %d has %v, want only %v at 4", early, m.seq, routes, r3)
		}
	}
}
