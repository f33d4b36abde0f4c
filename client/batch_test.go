package client

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// routes decodes the batch back into Route values.
func (b *Batch) routes(t *testing.T) []Route {
	var d wire.Decoder
	var out []Route
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
	var all []Route
	var b, b2 Batch
	for i := range 5000 {
		line := fmt.Sprintf("10.%d.0.0/%d via 192.0.2.%d dev e%d", rng.IntN(8), 8+rng.IntN(9), i%250+1, i)
		if rng.IntN(4) == 0 {
			line = fmt.Sprintf("2001:db8:%x::/%d via ::%d dev e%d", rng.IntN(8), 32+rng.IntN(17), i%250+1, i)
		}
		r, err := route.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
		if i < 2500 {
			b.Add(r)
		} else {
			b2.Add(r)
		}
	}
	b.Append(&b2)
	if got := b.routes(t); !slices.Equal(got, all) {
		t.Fatal("Append changed the routes")
	}
	want := slices.Clone(all)
	slices.SortStableFunc(want, func(a, b Route) int { return route.Compare(a.Dst, b.Dst) })
	b.Sort()
	if got := b.routes(t); !slices.Equal(got, want) {
		t.Error("Sort differs from a stable sort by prefix")
	}
	if b.Len() != len(all) || b.unsorted {
		t.Errorf("after Sort: Len %d, unsorted %v", b.Len(), b.unsorted)
	}
}
