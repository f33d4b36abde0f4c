package client

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/rtm-project/rtm/internal/shm"
)

// TestMACIndex checks the index against a map over seeded random puts and
// deletes, through rebuilds.
func TestMACIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := newMACIndex(0)
	ref := map[uint64]uint32{}
	for i := range 200000 {
		k := uint64(rng.IntN(5000))
		if rng.IntN(3) == 0 {
			_, want := ref[k]
			if got := x.del(k); got != want {
				t.Fatalf("step %d: del(%d) = %v, want %v", i, k, got, want)
			}
			delete(ref, k)
		} else {
			slot := uint32(rng.IntN(1 << 20))
			x = x.put(k, slot)
			ref[k] = slot
		}
		if got, ok := x.get(k); ok != (ref[k] != 0 || func() bool { _, ok := ref[k]; return ok }()) || got != ref[k] {
			t.Fatalf("step %d: get(%d) = %d, %v; want %d", i, k, got, ok, ref[k])
		}
	}
	n := 0
	x.each(func(k uint64, slot uint32) {
		if ref[k] != slot {
			t.Errorf("each: %d -> %d, want %d", k, slot, ref[k])
		}
		n++
	})
	if n != len(ref) || x.live != len(ref) {
		t.Errorf("each saw %d keys, live %d, want %d", n, x.live, len(ref))
	}
}

// TestLookupMACNoAlloc checks that a lookup, found or not, allocates
// nothing.
func TestLookupMACNoAlloc(t *testing.T) {
	name := fmt.Sprintf("rtm-test-%d-noalloc", os.Getpid())
	seg, err := shm.Create(name, 4, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unlink(seg.Name)
	defer seg.Close()
	seg.Set(2, MAC{1}, netip.MustParseAddr("2001:db8::1"))
	v, err := shm.Open(seg.Name, uint32(os.Geteuid()))
	if err != nil {
		t.Fatal(err)
	}
	var m Mirror
	m.init()
	m.macs.Store(m.macs.Load().put(packMAC(MAC{1}), 2))
	m.seg.Store(newSegRef(v, nil))
	if ip, ok := m.LookupMAC(MAC{1}); !ok || ip.String() != "2001:db8::1" {
		t.Fatalf("LookupMAC = %v, %v", ip, ok)
	}
	if n := testing.AllocsPerRun(1000, func() { m.LookupMAC(MAC{1}); m.LookupMAC(MAC{2}) }); n != 0 {
		t.Errorf("LookupMAC allocates %v times", n)
	}
}
