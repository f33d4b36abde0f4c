package journal_test

import (
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/journal"
)

// BenchmarkCommit measures a group commit (one write and one fsync) of
// records of several sizes, in the benchmark's temporary directory. Besides
// ns/op it reports the p50 and p99 of one commit's latency.
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct {
		name       string
		size, recs int
	}{
		{"1x100B", 100, 1},
		{"100x100B", 100, 100},
		{"1x4KiB", 4 << 10, 1},
		{"1x64KiB", 64 << 10, 1},
		{"1x1MiB", 1 << 20, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, err := journal.Create(filepath.Join(b.TempDir(), "journal"), testHeader)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := make([]byte, bc.size)
			var lat []time.Duration
			b.SetBytes(int64(bc.size * bc.recs))
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				for range bc.recs {
					if err := w.Append(p); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
		})
	}
}

// BenchmarkAppend measures what a loop turn spends buffering its records,
// without the write and the fsync that dominate BenchmarkCommit: a big
// load's turn of 300 records of 64 KiB, and a churn turn of 100 small ones.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name       string
		size, recs int
	}{
		{"100x100B", 100, 100},
		{"300x64KiB", 64 << 10, 300},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, err := journal.Create(filepath.Join(b.TempDir(), "journal"), testHeader)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := make([]byte, bc.size)
			b.SetBytes(int64(bc.size * bc.recs))
			b.ReportAllocs()
			for b.Loop() {
				w.Reserve(bc.recs, bc.size*bc.recs)
				for range bc.recs {
					if err := w.Append(p); err != nil {
						b.Fatal(err)
					}
				}
				w.Discard()
			}
		})
	}
}

// BenchmarkRead reads a 64 MiB journal of 64 KiB records, all in one
// commit, through with Check, checksums included, as rtmd's OpenAppend
// does at start-up (from the page cache).
func BenchmarkRead(b *testing.B) {
	path, size := bigJournal(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, end, err := journal.Check(path); err != nil || end != size {
			b.Fatalf("Check = %d, %v", end, err)
		}
	}
}

// BenchmarkReplay reads the journal of BenchmarkRead with Next, as rtmd's
// replay does, which holds the whole 64 MiB commit.
func BenchmarkReplay(b *testing.B) {
	path, size := bigJournal(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := journal.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.Next()
		if len(c) != 1024 || err != nil {
			b.Fatalf("Next = %d records, %v", len(c), err)
		}
		if _, err := r.Next(); err != io.EOF {
			b.Fatalf("Next after the commit = %v", err)
		}
		r.Close()
	}
}

// bigJournal writes a 64 MiB journal of one commit of 64 KiB records.
func bigJournal(b *testing.B) (string, int64) {
	path := filepath.Join(b.TempDir(), "journal")
	w, err := journal.Create(path, testHeader)
	if err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 64<<10)
	for range 1024 {
		w.Append(p)
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	size := w.Size()
	w.Close()
	return path, size
}
