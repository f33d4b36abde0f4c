package route_test

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// TestFreezeCostIndependentOfDistinct: every subscriber's snapshot is a
// Freeze, and a peer that may only subscribe can ask for one per
// connection, so a Freeze must not copy what grows with the table. With
// 100,000 routes through 100,000 gateways (each route its own attributes)
// in one shard, Freeze copies the attribute list: 56 bytes a distinct set,
// held by each View until its snapshot is written. rtmd with 1,000,000
// such routes took ~1 s of its loop and ~57 MB for each subscriber that
// did not read; 116 of them held 6.6 GB.
func TestFreezeCostIndependentOfDistinct(t *testing.T) {
	var tb route.Table
	for i := range 100_000 {
		r := route.Simple(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), "eth0")
		tb.Set(&r)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v := tb.Freeze()
	runtime.ReadMemStats(&after)
	if v.Len() != 100_000 {
		t.Fatalf("View.Len() = %d, want 100000", v.Len())
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Freeze of a table with %d distinct attribute sets allocated %d bytes, want at most 1 MiB", tb.Distinct(), got)
	}
}
