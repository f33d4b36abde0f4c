package route_test

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// randomTable returns n random IPv4 routes over 16 next hops, as a real
// table has few.
func randomRoutes(n int) []route.Route {
	rng := rand.New(rand.NewPCG(1, 2))
	routes := make([]route.Route, n)
	for i := range routes {
		a := rng.Uint32()
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 8+rng.IntN(25)).Masked()
		g := byte(1 + rng.IntN(16))
		routes[i] = route.Simple(p, netip.AddrFrom4([4]byte{192, 0, 2, g}), "eth0")
	}
	return routes
}

func BenchmarkTableSet(b *testing.B) {
	routes := randomRoutes(1 << 20)
	var t route.Table
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r := routes[i&(1<<20-1)]
		t.Set(&r)
		i++
	}
}

func BenchmarkLookup(b *testing.B) {
	routes := randomRoutes(1 << 20)
	var t route.Table
	for _, r := range routes {
		t.Set(&r)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		t.Lookup(route.TableMain, routes[i&(1<<20-1)].Dst.Addr())
		i++
	}
}

// BenchmarkTableFillSorted fills an empty table with a million routes in
// order, as a load does.
func BenchmarkTableFillSorted(b *testing.B) {
	routes := randomRoutes(1 << 20)
	slices.SortFunc(routes, func(a, b route.Route) int { return route.Compare(a.Dst, b.Dst) })
	b.ReportAllocs()
	for b.Loop() {
		var t route.Table
		for _, r := range routes {
			t.Set(&r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(routes)), "ns/route")
}
