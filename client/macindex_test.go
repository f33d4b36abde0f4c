package client

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
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

// TestLookupMACTruncated truncates the segment under a mirror: LookupMAC
// and LookupMACs find nothing, do not crash, and kick the session once.
func TestLookupMACTruncated(t *testing.T) {
	name := fmt.Sprintf("rtm-test-%d-truncated", os.Getpid())
	seg, err := shm.Create(name, 1024, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Unlink(seg.Name)
	defer seg.Close()
	var m Mirror
	m.init()
	keys := []MAC{{1}, {2}, {3}}
	for i, k := range keys {
		slot := i * 500 // pages apart
		seg.Set(slot, k, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		m.macs.Store(m.macs.Load().put(packMAC(k), uint32(slot)))
	}
	v, err := shm.Open(seg.Name, uint32(os.Geteuid()))
	if err != nil {
		t.Fatal(err)
	}
	kicks := 0
	m.seg.Store(newSegRef(v, func() { kicks++ }))
	ips := make([]netip.Addr, len(keys))
	if n := m.LookupMACs(keys, ips); n != 3 || ips[2] != netip.AddrFrom4([4]byte{10, 0, 0, 2}) {
		t.Fatalf("LookupMACs = %d, %v; want all 3", n, ips)
	}
	if n := testing.AllocsPerRun(100, func() { m.LookupMACs(keys, ips) }); n != 0 {
		t.Errorf("LookupMACs allocates %v times", n)
	}
	if err := os.Truncate(filepath.Join(shm.Dir, seg.Name), 4096); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.LookupMAC(keys[0]); !ok {
		t.Error("LookupMAC of a record still there failed")
	}
	if ip, ok := m.LookupMAC(keys[2]); ok || kicks != 1 {
		t.Errorf("LookupMAC past the end = %v, %v, %d kicks; want not found, 1 kick", ip, ok, kicks)
	}
	if n := m.LookupMACs(keys, ips); n != 0 || ips[0].IsValid() || kicks != 1 {
		t.Errorf("LookupMACs on a truncated segment = %d, %v, %d kicks; want 0, none, still 1 kick", n, ips, kicks)
	}
}
