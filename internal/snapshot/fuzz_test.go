package snapshot_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/snapshot"
)

var fuzzErrRE = regexp.MustCompile(`^snapshot fuzz: .*offset \d+`)

// FuzzRead checks that the reader never panics, never holds a chunk buffer
// larger than the file or MaxChunk, names the file and an offset in every
// error about the bytes, passes only valid routes, and succeeds only when
// the counts it saw are the header's.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	for i, c := range []contents{
		{},
		{specialRoutes(f), testMACs(5)},
		{manyRoutes(30, 1), nil},
		{nil, testMACs(3)},
	} {
		path := filepath.Join(dir, "s"+string(rune('0'+i)))
		if _, err := snapshot.Write(path, testHeader, slices.Values(c.routes), c.macs); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if i == 1 {
			f.Add(b[:len(b)-7])
			b = slices.Clone(b)
			b[snapshot.HeaderLen+20] ^= 4
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var routes, macs uint64
		_, bufCap, err := snapshot.ReadBytes("fuzz", b, func(r route.Route) error {
			if err := r.Validate(); err != nil {
				t.Fatalf("route %+v passed: %v", r, err)
			}
			routes++
			return nil
		}, func(m snapshot.MAC) error {
			if !m.IP.IsValid() || m.IP.Zone() != "" {
				t.Fatalf("MAC entry %+v passed", m)
			}
			macs++
			return nil
		})
		if bufCap > len(b) || bufCap > snapshot.MaxChunk {
			t.Fatalf("chunk buffer of %d bytes for a %d-byte file", bufCap, len(b))
		}
		if err != nil {
			if !fuzzErrRE.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the file and an offset", err)
			}
			return
		}
		if wr, wm := binary.LittleEndian.Uint64(b[40:]), binary.LittleEndian.Uint64(b[48:]); routes != wr || macs != wm {
			t.Fatalf("read %d routes and %d MACs, the header says %d and %d", routes, macs, wr, wm)
		}
	})
}
