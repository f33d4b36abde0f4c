package client

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// routes decodes the batch back into routes.
func (b *Batch) routes(t *testing.T) []route.Route {
	var d wire.Decoder
	var out []route.Route
	d.Reset(b.buf)
	for range b.offs {
		out = append(out, d.Route())
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBatchSort checks Sort against a stable sort by prefix, with
// duplicates whose order must survive, across Append.
func TestBatchSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var all []route.Route
	var b, b2 Batch
	for i := range 5000 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(8))}), 8+rng.IntN(9)).Masked()
		gw := netip.AddrFrom4([4]byte{192, 0, 2, byte(i%250 + 1)})
		if rng.IntN(4) == 0 {
			dst = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(8))}), 32+rng.IntN(17)).Masked()
			gw = netip.AddrFrom16([16]byte{15: byte(i%250 + 1)})
		}
		r := route.Simple(dst, gw, fmt.Sprintf("e%d", i))
		r.Table = uint32(route.TableMain + rng.IntN(2))
		all = append(all, r)
		if i < 2500 {
			b.add(&r)
		} else {
			b2.add(&r)
		}
	}
	equal := func(a, b route.Route) bool { return a.Equal(&b) }
	b.Append(&b2)
	if got := b.routes(t); !slices.EqualFunc(got, all, equal) {
		t.Fatal("Append changed the routes")
	}
	want := slices.Clone(all)
	slices.SortStableFunc(want, func(a, b route.Route) int { return route.Compare(a.Dst, b.Dst) })
	b.Sort()
	if got := b.routes(t); !slices.EqualFunc(got, want, equal) {
		t.Error("Sort differs from a stable sort by prefix")
	}
	if b.Len() != len(all) || b.unsorted {
		t.Errorf("after Sort: Len %d, unsorted %v", b.Len(), b.unsorted)
	}
}
