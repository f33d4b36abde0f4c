package route_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// randRoute returns a random route from a small space, so that operations
// hit existing keys often: three tables, every type, up to three next
// hops, a few metrics and protocols.
func randRoute(r *rand.Rand) route.Route {
	var dst netip.Prefix
	v6 := r.IntN(4) == 0
	if v6 {
		a := [16]byte{0x20, 0x01, 0x0d, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))}
		dst = netip.PrefixFrom(netip.AddrFrom16(a), r.IntN(49)).Masked()
	} else {
		a := [4]byte{byte(r.IntN(8)), byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))}
		dst = netip.PrefixFrom(netip.AddrFrom4(a), r.IntN(33)).Masked()
	}
	rt := route.Route{Table: []uint32{route.TableMain, 100, route.TableLocal}[r.IntN(3)], Dst: dst,
		Attrs: route.Attrs{Type: route.Unicast, Proto: route.Proto(2 + r.IntN(3)), Metric: uint32(r.IntN(3) * 100)}}
	switch r.IntN(8) {
	case 0:
		rt.Type = []route.Type{route.Blackhole, route.Unreachable, route.Prohibit, route.Throw}[r.IntN(4)]
		return rt
	case 1:
		rt.Type = route.Local
		rt.Hops = []route.NextHop{{Dev: "lo", Weight: 1}}
		return rt
	}
	n := 1 + r.IntN(3)
	for i := range n {
		gw := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(5))})
		if v6 || r.IntN(10) == 0 {
			gw = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(i*5 + r.IntN(5))})
		}
		h := route.NextHop{Gateway: gw, Dev: fmt.Sprintf("eth%d", i), Weight: 1}
		if n > 1 {
			h.Weight = uint16(1 + r.IntN(256))
		} else if r.IntN(5) == 0 {
			h.Gateway = netip.Addr{} // on-link
		}
		rt.Hops = append(rt.Hops, h)
	}
	return rt
}

// TestTableDifferential runs seeded random operations on a Table and on a
// plain map, and compares them after every step, and a frozen view against
// the map as it was.
func TestTableDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tb route.Table
	ref := map[route.Key]route.Route{}
	var view *route.View
	var viewRef map[route.Key]route.Route
	for i := range 20000 {
		r := randRoute(rng)
		if err := r.Validate(); err != nil {
			t.Fatalf("step %d: randRoute made an invalid route %v: %v", i, r, err)
		}
		k := r.Key()
		switch rng.IntN(3) {
		case 0:
			old, had := tb.Set(&r)
			want, wantHad := ref[k]
			if had != wantHad || !old.Equal(&want.Attrs) {
				t.Fatalf("step %d: Set(%v) = %v, %v; want %v, %v", i, r, old, had, want.Attrs, wantHad)
			}
			ref[k] = r
		case 1:
			// As a load sets routes: attributes held, then released.
			id := tb.Hold(&r.Attrs)
			had, changed := tb.SetHeld(k, id)
			tb.Release(id)
			want, wantHad := ref[k]
			if had != wantHad || changed != !(wantHad && want.Attrs.Equal(&r.Attrs)) {
				t.Fatalf("step %d: SetHeld(%v) = %v, %v; had %v, %v", i, r, had, changed, wantHad, want.Attrs)
			}
			ref[k] = r
		case 2:
			old, had := tb.Delete(k)
			want, wantHad := ref[k]
			if had != wantHad || !old.Equal(&want.Attrs) {
				t.Fatalf("step %d: Delete(%v) = %v, %v; want %v, %v", i, k, old, had, want.Attrs, wantHad)
			}
			delete(ref, k)
		}
		want, wantOK := ref[k]
		if got, ok := tb.Get(k); ok != wantOK || !got.Equal(&want.Attrs) {
			t.Fatalf("step %d: Get(%v) = %v, %v; want %v", i, k, got, ok, want.Attrs)
		}
		if i%2500 == 0 {
			if view != nil {
				checkAll(t, "view", view.All(), view.Len(), viewRef)
			}
			view, viewRef = tb.Freeze(), maps(ref)
		}
	}
	checkAll(t, "table", tb.All(), tb.Len(), ref)
	checkAll(t, "view", view.All(), view.Len(), viewRef)
	tb.Clear()
	if tb.Len() != 0 || tb.Distinct() != 0 {
		t.Errorf("after Clear: Len = %d, Distinct = %d", tb.Len(), tb.Distinct())
	}
}

func maps(m map[route.Key]route.Route) map[route.Key]route.Route {
	c := make(map[route.Key]route.Route, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func checkAll(t *testing.T, what string, all func(func(route.Route) bool), n int, ref map[route.Key]route.Route) {
	t.Helper()
	var got []route.Route
	for r := range all {
		got = append(got, r)
	}
	var want []route.Route
	for _, r := range ref {
		want = append(want, r)
	}
	slices.SortFunc(want, func(a, b route.Route) int {
		if a.Table != b.Table {
			return cmp.Compare(a.Table, b.Table)
		}
		return route.Compare(a.Dst, b.Dst)
	})
	if n != len(want) {
		t.Errorf("%s: Len = %d, want %d", what, n, len(want))
	}
	if !slices.EqualFunc(got, want, func(a, b route.Route) bool { return a.Equal(&b) }) {
		t.Fatalf("%s: All() differs from reference: got %d routes, want %d", what, len(got), len(want))
	}
}

// TestLookupLinear checks longest-prefix match in each table against a
// linear scan of that table.
func TestLookupLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tb route.Table
	ref := map[route.Key]route.Route{}
	for range 3000 {
		r := randRoute(rng)
		tb.Set(&r)
		ref[r.Key()] = r
	}
	view := tb.Freeze()
	for range 20000 {
		q := randRoute(rng)
		a, n := q.Dst.Addr(), q.Table
		var want route.Route
		found := false
		for _, r := range ref {
			if r.Table == n && r.Dst.Contains(a) && (!found || r.Dst.Bits() > want.Dst.Bits()) {
				want, found = r, true
			}
		}
		got, ok := tb.Lookup(n, a)
		if ok != found || !got.Equal(&want) {
			t.Fatalf("Lookup(%d, %v) = %v, %v; want %v, %v", n, a, got, ok, want, found)
		}
		if got, ok := view.Lookup(n, a); ok != found || !got.Equal(&want) {
			t.Fatalf("View.Lookup(%d, %v) = %v, %v; want %v, %v", n, a, got, ok, want, found)
		}
	}
}

// TestMemoryPerRoute checks the bound: a million single-next-hop
// IPv4 routes (through 16 next hops, as real tables have few) take under
// 100 bytes a route of live heap.
func TestMemoryPerRoute(t *testing.T) {
	const n = 1 << 20
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var tb route.Table
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		a := rng.Uint32()
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 8+rng.IntN(25)).Masked()
		r := route.Simple(p, netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + rng.IntN(16))}), "eth0")
		tb.Set(&r)
	}
	per := float64(int64(heap())-int64(before)) / float64(tb.Len())
	t.Logf("%d routes, %d distinct attributes: %.1f bytes a route", tb.Len(), tb.Distinct(), per)
	if per >= 100 {
		t.Errorf("%.1f bytes a route, want under 100", per)
	}
	runtime.KeepAlive(&tb)
}
