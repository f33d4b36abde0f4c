package route_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// randRoute returns a random route from a small space, so that operations
// hit existing prefixes often.
func randRoute(r *rand.Rand) route.Route {
	var dst netip.Prefix
	if r.IntN(4) == 0 {
		a := [16]byte{0x20, 0x01, 0x0d, byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))}
		dst = netip.PrefixFrom(netip.AddrFrom16(a), r.IntN(49)).Masked()
	} else {
		a := [4]byte{byte(r.IntN(8)), byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))}
		dst = netip.PrefixFrom(netip.AddrFrom4(a), r.IntN(33)).Masked()
	}
	gw := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(5))})
	if !dst.Addr().Is4() {
		gw = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(r.IntN(5))})
	}
	return route.Route{Dst: dst, NextHop: route.NextHop{Gateway: gw, Dev: fmt.Sprintf("eth%d", r.IntN(3))}}
}

// TestTableDifferential runs seeded random operations on a Table and on a
// plain map, and compares them after every step, and a frozen view against
// the map as it was.
func TestTableDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tb route.Table
	ref := map[netip.Prefix]route.NextHop{}
	var view *route.View
	var viewRef map[netip.Prefix]route.NextHop
	for i := range 20000 {
		r := randRoute(rng)
		switch rng.IntN(3) {
		case 0, 1:
			old, had := tb.Set(r.Dst, r.NextHop)
			wantOld, wantHad := ref[r.Dst]
			if had != wantHad || old != wantOld {
				t.Fatalf("step %d: Set(%v) = %v, %v; want %v, %v", i, r, old, had, wantOld, wantHad)
			}
			ref[r.Dst] = r.NextHop
		case 2:
			old, had := tb.Delete(r.Dst)
			wantOld, wantHad := ref[r.Dst]
			if had != wantHad || old != wantOld {
				t.Fatalf("step %d: Delete(%v) = %v, %v; want %v, %v", i, r.Dst, old, had, wantOld, wantHad)
			}
			delete(ref, r.Dst)
		}
		if got, ok := tb.Get(r.Dst); ok != (ref[r.Dst] != route.NextHop{}) || got != ref[r.Dst] {
			t.Fatalf("step %d: Get(%v) = %v, %v; want %v", i, r.Dst, got, ok, ref[r.Dst])
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
	if tb.Len() != 0 || tb.Hops() != 0 {
		t.Errorf("after Clear: Len = %d, Hops = %d", tb.Len(), tb.Hops())
	}
}

func maps(m map[netip.Prefix]route.NextHop) map[netip.Prefix]route.NextHop {
	c := make(map[netip.Prefix]route.NextHop, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func checkAll(t *testing.T, what string, all func(func(route.Route) bool), n int, ref map[netip.Prefix]route.NextHop) {
	t.Helper()
	var got []route.Route
	for r := range all {
		got = append(got, r)
	}
	var want []route.Route
	for p, nh := range ref {
		want = append(want, route.Route{Dst: p, NextHop: nh})
	}
	slices.SortFunc(want, func(a, b route.Route) int { return route.Compare(a.Dst, b.Dst) })
	if n != len(want) {
		t.Errorf("%s: Len = %d, want %d", what, n, len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: All() differs from reference: got %d routes, want %d", what, len(got), len(want))
	}
}

// TestLookupLinear checks longest-prefix match against a linear scan.
func TestLookupLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tb route.Table
	var routes []route.Route
	for range 3000 {
		r := randRoute(rng)
		if _, had := tb.Set(r.Dst, r.NextHop); !had {
			routes = append(routes, r)
		} else {
			for i := range routes {
				if routes[i].Dst == r.Dst {
					routes[i] = r
				}
			}
		}
	}
	view := tb.Freeze()
	for range 20000 {
		a := randRoute(rng).Dst.Addr()
		var want route.Route
		found := false
		for _, r := range routes {
			if r.Dst.Contains(a) && (!found || r.Dst.Bits() > want.Dst.Bits()) {
				want, found = r, true
			}
		}
		got, ok := tb.Lookup(a)
		if ok != found || got != want {
			t.Fatalf("Lookup(%v) = %v, %v; want %v, %v", a, got, ok, want, found)
		}
		if got, ok := view.Lookup(a); ok != found || got != want {
			t.Fatalf("View.Lookup(%v) = %v, %v; want %v, %v", a, got, ok, want, found)
		}
	}
}
