package snapshot_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/snapshot"
)

// benchView returns a frozen table of a million routes (a fifth IPv6, four
// tables, a few next hops), as rtmd writes it in the background.
func benchView(b *testing.B) *route.View {
	var tab route.Table
	rs := manyRoutes(1_000_000, 9)
	for i := range rs {
		tab.Set(&rs[i])
	}
	return tab.Freeze()
}

// BenchmarkWrite writes a snapshot of a million routes from a frozen view,
// fsync and rename included, in the benchmark's temporary directory.
func BenchmarkWrite(b *testing.B) {
	v := benchView(b)
	path := filepath.Join(b.TempDir(), "snapshot")
	var size int64
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if size, err = snapshot.Write(path, testHeader, v.All(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	b.ReportMetric(float64(size)/1e6, "file-MB")
}

// BenchmarkRead reads a snapshot of a million routes (from the page cache):
// "count" only decodes, "table" builds a route.Table as rtmd does at start.
func BenchmarkRead(b *testing.B) {
	v := benchView(b)
	path := filepath.Join(b.TempDir(), "snapshot")
	size, err := snapshot.Write(path, testHeader, v.All(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil { // into the page cache
		b.Fatal(err)
	}
	b.Run("count", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			if _, err := snapshot.Read(path, func(route.Route) error { n++; return nil }, nil); err != nil || n != v.Len() {
				b.Fatalf("Read = %d routes, %v", n, err)
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			var tab route.Table
			if _, err := snapshot.Read(path, func(r route.Route) error { tab.Set(&r); return nil }, nil); err != nil || tab.Len() != v.Len() {
				b.Fatalf("Read = %d routes, %v", tab.Len(), err)
			}
		}
	})
}
