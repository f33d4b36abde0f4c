package snapshot_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/snapshot"
)

var testHeader = snapshot.Header{
	History: [16]byte{0x52, 0x54, 0x4d, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
	Seq:     1_000_041,
}

func mustRoute(t testing.TB, r route.Route) route.Route {
	t.Helper()
	if err := r.Validate(); err != nil {
		t.Fatalf("test route %+v: %v", r, err)
	}
	return r
}

// specialRoutes returns routes with every attribute: IPv4 and IPv6, several
// tables, every type, protocols, metrics, source addresses, multipath with
// weights, next hops with and without gateway or interface.
func specialRoutes(t testing.TB) []route.Route {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	attrs := func(typ route.Type, proto route.Proto, metric uint32, src netip.Addr, hops ...route.NextHop) route.Attrs {
		return route.Attrs{Type: typ, Proto: proto, Metric: metric, Src: src, Hops: hops}
	}
	hop := func(gw, dev string, w uint16) route.NextHop {
		h := route.NextHop{Dev: dev, Weight: w}
		if gw != "" {
			h.Gateway = a(gw)
		}
		return h
	}
	rs := []route.Route{
		{Table: route.TableMain, Dst: p("0.0.0.0/0"), Attrs: attrs(route.Unicast, route.ProtoStatic, 0, netip.Addr{}, hop("192.0.2.1", "eth0", 1))},
		{Table: route.TableMain, Dst: p("::/0"), Attrs: attrs(route.Unicast, route.ProtoStatic, 0, netip.Addr{}, hop("fe80::1", "eth0", 1))},
		{Table: 100, Dst: p("198.51.100.0/24"), Attrs: attrs(route.Unicast, 186, 1024, a("192.0.2.7"),
			hop("192.0.2.1", "eth0", 1), hop("192.0.2.2", "eth1", 3), hop("192.0.2.3", "", 256))},
		{Table: 100, Dst: p("2001:db8:1::/48"), Attrs: attrs(route.Unicast, 12, 7, a("2001:db8::7"),
			hop("2001:db8::1", "eth0", 2), hop("", "wg0", 5))},
		{Table: 4_000_000_000, Dst: p("203.0.113.5/32"), Attrs: attrs(route.Unicast, route.ProtoStatic, 0, netip.Addr{}, hop("", "lo", 1))},
		{Table: route.TableLocal, Dst: p("192.0.2.7/32"), Attrs: attrs(route.Local, 2, 0, a("192.0.2.7"), hop("", "eth0", 1))},
		{Table: route.TableLocal, Dst: p("2001:db8::7/128"), Attrs: attrs(route.Local, 2, 0, netip.Addr{})},
		{Table: route.TableMain, Dst: p("10.0.0.0/8"), Attrs: attrs(route.Blackhole, route.ProtoStatic, 0, netip.Addr{})},
		{Table: route.TableMain, Dst: p("fc00::/7"), Attrs: attrs(route.Unreachable, route.ProtoStatic, 5, netip.Addr{})},
		{Table: route.TableDefault, Dst: p("172.16.0.0/12"), Attrs: attrs(route.Prohibit, 3, 0, netip.Addr{})},
		{Table: 200, Dst: p("100.64.0.0/10"), Attrs: attrs(route.Throw, route.ProtoStatic, 0, netip.Addr{})},
	}
	for i := range rs {
		mustRoute(t, rs[i])
	}
	return rs
}

// manyRoutes returns n routes in several tables, IPv4 and IPv6, through a
// few next hops, seeded.
func manyRoutes(n int, seed uint64) []route.Route {
	rng := rand.New(rand.NewPCG(seed, 7))
	gws4 := []route.NextHop{{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "eth0", Weight: 1}, {Gateway: netip.MustParseAddr("192.0.2.2"), Dev: "eth1", Weight: 1}}
	gws6 := []route.NextHop{{Gateway: netip.MustParseAddr("2001:db8::1"), Dev: "eth0", Weight: 1}}
	rs := make([]route.Route, 0, n)
	for i := range n {
		r := route.Route{Table: []uint32{route.TableMain, route.TableMain, 100, 200}[i%4],
			Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic}}
		if i%5 == 4 {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			binary.BigEndian.PutUint64(b[2:], uint64(i)<<8)
			r.Dst = netip.PrefixFrom(netip.AddrFrom16(b), 80)
			r.Hops = gws6
		} else {
			r.Dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}), 24)
			r.Hops = gws4[i%2 : i%2+1]
			if i%3 == 0 {
				r.Metric = uint32(rng.IntN(1000))
			}
		}
		rs = append(rs, r)
	}
	return rs
}

// testMACs returns n MAC entries, IPv4 and IPv6, with and without an
// interface.
func testMACs(n int) []snapshot.MAC {
	ms := make([]snapshot.MAC, n)
	for i := range ms {
		ms[i].MAC = mac.Addr{2, 0, 0x5e, byte(i >> 16), byte(i >> 8), byte(i)}
		ms[i].Slot = uint32(n - i) // not in MAC order, as after deletes
		if i%2 == 0 {
			ms[i].IP = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			var b [16]byte
			b[0], b[1], b[14], b[15] = 0xfd, 0, byte(i>>8), byte(i)
			ms[i].IP = netip.AddrFrom16(b)
		}
		if i%3 != 0 {
			ms[i].Dev = "eth" + strconv.Itoa(i%4)
		}
	}
	return ms
}

type contents struct {
	routes []route.Route
	macs   []snapshot.MAC
}

func readAll(t testing.TB, path string) (snapshot.Header, contents, error) {
	t.Helper()
	var c contents
	h, err := snapshot.Read(path, func(r route.Route) error {
		c.routes = append(c.routes, r)
		return nil
	}, func(m snapshot.MAC) error {
		c.macs = append(c.macs, m)
		return nil
	})
	return h, c, err
}

func write(t testing.TB, dir string, rs []route.Route, ms []snapshot.MAC) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "snapshot")
	size, err := snapshot.Write(path, testHeader, slices.Values(rs), ms)
	if err != nil {
		t.Fatal(err)
	}
	return path, size
}

func sameContents(t testing.TB, got contents, rs []route.Route, ms []snapshot.MAC) {
	t.Helper()
	if len(got.routes) != len(rs) {
		t.Fatalf("read %d routes, want %d", len(got.routes), len(rs))
	}
	for i := range rs {
		if !got.routes[i].Equal(&rs[i]) {
			t.Fatalf("route %d = %+v, want %+v", i, got.routes[i], rs[i])
		}
	}
	if !slices.Equal(got.macs, ms) {
		t.Fatalf("MACs differ: read %d, want %d; first read %+v", len(got.macs), len(ms), got.macs[:min(1, len(got.macs))])
	}
}

// dirNames lists dir, to check that nothing is left behind.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	special := specialRoutes(t)
	for _, tc := range []struct {
		name string
		rs   []route.Route
		ms   []snapshot.MAC
	}{
		{"empty", nil, nil},
		{"every attribute", special, testMACs(7)},
		{"routes only, many chunks", append(slices.Clone(special), manyRoutes(30_000, 1)...), nil},
		{"MACs only, many chunks", nil, testMACs(10_000)},
		{"both, many chunks", append(manyRoutes(20_000, 2), special...), testMACs(5_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, size := write(t, dir, tc.rs, tc.ms)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != size || st.Mode().Perm() != 0o600 {
				t.Errorf("file of %d bytes, mode %v; Write said %d bytes, want mode 0600", st.Size(), st.Mode().Perm(), size)
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{"snapshot"}) {
				t.Errorf("directory holds %q, want just the snapshot", names)
			}
			h, got, err := readAll(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if h != testHeader {
				t.Errorf("header = %+v, want %+v", h, testHeader)
			}
			sameContents(t, got, tc.rs, tc.ms)
		})
	}
}

// TestFromView writes a frozen table, changes the table, and reads the
// snapshot back into a new table: it equals the table as it was frozen.
func TestFromView(t *testing.T) {
	var tab route.Table
	rs := append(manyRoutes(20_000, 3), specialRoutes(t)...)
	for i := range rs {
		tab.Set(&rs[i])
	}
	v := tab.Freeze()
	for i := range rs[:100] {
		tab.Delete(rs[i].Key())
	}
	path := filepath.Join(t.TempDir(), "snapshot")
	if _, err := snapshot.Write(path, testHeader, v.All(), nil); err != nil {
		t.Fatal(err)
	}
	var got route.Table
	if _, err := snapshot.Read(path, func(r route.Route) error {
		if _, had := got.Set(&r); had {
			return fmt.Errorf("route %v twice", r.Key())
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if got.Len() != len(rs) {
		t.Fatalf("read %d routes, want %d", got.Len(), len(rs))
	}
	for i := range rs {
		a, ok := got.Get(rs[i].Key())
		if !ok || !a.Equal(&rs[i].Attrs) {
			t.Fatalf("route %v = %+v, %v; want %+v", rs[i].Key(), a, ok, rs[i].Attrs)
		}
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, manyRoutes(100, 1), testMACs(3))
	path, _ := write(t, dir, specialRoutes(t), nil)
	_, got, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, got, specialRoutes(t), nil)
}

// TestLeftoverTemp: a temporary file left by a crash makes Write fail
// without touching it or the snapshot in place.
func TestLeftoverTemp(t *testing.T) {
	dir := t.TempDir()
	path, _ := write(t, dir, specialRoutes(t), nil)
	if err := os.WriteFile(path+".tmp", []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Write(path, testHeader, slices.Values(manyRoutes(10, 1)), nil); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Write with a leftover temporary file = %v, want ErrExist naming %s", err, path)
	}
	if b, _ := os.ReadFile(path + ".tmp"); string(b) != "half" {
		t.Fatalf("the leftover temporary file holds %q", b)
	}
	if _, got, err := readAll(t, path); err != nil || len(got.routes) != len(specialRoutes(t)) {
		t.Fatalf("the snapshot in place: %d routes, %v", len(got.routes), err)
	}
}

func TestBadMAC(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    snapshot.MAC
		want string
	}{
		{"no IP", snapshot.MAC{}, "no IP"},
		{"zone", snapshot.MAC{IP: netip.MustParseAddr("fe80::1%eth0")}, "zone"},
		{"mapped", snapshot.MAC{IP: netip.MustParseAddr("::ffff:10.0.0.1")}, "IPv4-mapped"},
		{"dev", snapshot.MAC{IP: netip.MustParseAddr("10.0.0.1"), Dev: "a/b"}, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ms := append(testMACs(2), tc.m)
			_, err := snapshot.Write(filepath.Join(dir, "snapshot"), testHeader, nil, ms)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "MAC entry 2") {
				t.Fatalf("Write = %v, want an error naming entry 2 and %q", err, tc.want)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("directory holds %q after a refused Write", names)
			}
		})
	}
}

func TestCallbackError(t *testing.T) {
	path, _ := write(t, t.TempDir(), manyRoutes(10, 1), testMACs(10))
	stop := errors.New("stop")
	n := 0
	_, err := snapshot.Read(path, func(route.Route) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}, func(snapshot.MAC) error { return nil })
	if !errors.Is(err, stop) || n != 3 || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read = %v after %d routes, want the callback's error after 3", err, n)
	}
	n = 0
	_, err = snapshot.Read(path, func(route.Route) error { return nil }, func(snapshot.MAC) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 5 {
		t.Fatalf("Read = %v after %d MACs, want the callback's error after 5", err, n)
	}
}

// regions returns where the header, each chunk and the trailer start, and
// the end of the file, by walking a good snapshot's chunk lengths.
func regions(t testing.TB, b []byte) []int {
	t.Helper()
	offs := []int{0}
	for off := snapshot.HeaderLen; off < len(b); off += snapshot.ChunkHeaderLen + int(binary.LittleEndian.Uint32(b[off+4:])) {
		offs = append(offs, off)
	}
	return append(offs, len(b))
}

// regionOf returns the start and end of the region holding byte i.
func regionOf(offs []int, i int) (int, int) {
	k, found := slices.BinarySearch(offs, i)
	if !found {
		k--
	}
	return offs[k], offs[k+1]
}

var offsetRE = regexp.MustCompile(`offset (\d+)`)

// refused checks that b, as a snapshot file, is refused with an error naming
// the file and an offset in [lo, hi]. It reads from memory: the file-based
// path through Read is the same reader over an *os.File.
func refused(t *testing.T, name string, b []byte, lo, hi int) {
	t.Helper()
	const path = "/state/snapshot"
	_, _, err := snapshot.ReadBytes(path, b, func(route.Route) error { return nil }, func(snapshot.MAC) error { return nil })
	if err == nil {
		t.Fatalf("%s: Read succeeded", name)
	}
	m := offsetRE.FindStringSubmatch(err.Error())
	if !strings.Contains(err.Error(), "snapshot "+path+": ") || m == nil {
		t.Fatalf("%s: error %q does not name the file and an offset", name, err)
	}
	if off, _ := strconv.Atoi(m[1]); off < lo || off > hi {
		t.Fatalf("%s: error %q names offset %d, want %d to %d", name, err, off, lo, hi)
	}
}

// TestCutAndFlipped cuts a snapshot at every offset, and flips every byte
// of it, for a small one; and at every offset near its chunk boundaries and
// at seeded random ones, for one of many chunks. Each is refused with the
// file and the offset of the part that is wrong.
func TestCutAndFlipped(t *testing.T) {
	dir := t.TempDir()
	small, _ := write(t, dir, specialRoutes(t), testMACs(7))
	smallB, err := os.ReadFile(small)
	if err != nil {
		t.Fatal(err)
	}
	big, _ := write(t, t.TempDir(), manyRoutes(6_000, 4), testMACs(3_000))
	bigB, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, f := range []struct {
		name string
		b    []byte
		all  bool
	}{{"small", smallB, true}, {"big", bigB, false}} {
		offs := regions(t, f.b)
		if want := map[bool]int{true: 5, false: 7}[f.all]; len(offs) < want {
			t.Fatalf("%s: region starts %v, want a header, route chunks, MAC chunks (two each for the big one) and a trailer", f.name, offs)
		}
		var at []int
		if f.all {
			for i := range f.b {
				at = append(at, i)
			}
		} else {
			for _, o := range offs[:len(offs)-1] {
				for i := max(0, o-3); i < min(len(f.b), o+snapshot.ChunkHeaderLen+3); i++ {
					at = append(at, i)
				}
			}
			for range 200 {
				at = append(at, rng.IntN(len(f.b)))
			}
		}
		for _, i := range at {
			lo, hi := regionOf(offs, i)
			refused(t, fmt.Sprintf("%s cut at %d", f.name, i), f.b[:i], lo, i)
			b := slices.Clone(f.b)
			b[i] ^= 1 << (i % 8)
			refused(t, fmt.Sprintf("%s byte %d flipped", f.name, i), b, lo, hi-1)
		}
	}
}

// TestInconsistent builds files whose every checksum holds but whose parts
// disagree: counts, order, a missing or extra chunk.
func TestInconsistent(t *testing.T) {
	path, _ := write(t, t.TempDir(), specialRoutes(t), testMACs(3))
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offs := regions(t, good)
	// offs: 0, route chunk, MAC chunk, trailer, end.
	if len(offs) != 5 {
		t.Fatalf("regions %v, want header, 1 route chunk, 1 MAC chunk, trailer", offs)
	}
	header := func(routes, macs uint64) []byte { return snapshot.AppendHeader(nil, testHeader, routes, macs) }
	routeChunk, macChunk, trailer := good[offs[1]:offs[2]], good[offs[2]:offs[3]], good[offs[3]:]
	nr, nm := uint64(len(specialRoutes(t))), uint64(3)
	trailerAt := func(routes, macs uint64, at int) []byte {
		p := binary.LittleEndian.AppendUint64(nil, routes)
		p = binary.LittleEndian.AppendUint64(p, macs)
		p = binary.LittleEndian.AppendUint64(p, uint64(at))
		return append(snapshot.AppendChunkHeader(nil, 3, p), p...)
	}
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"header counts one more route", cat(header(nr+1, nm), good[offs[1]:]), "route counts disagree"},
		{"header counts one MAC less", cat(header(nr, nm-1), good[offs[1]:]), "MAC entries so far"},
		{"trailer counts differ", cat(good[:offs[3]], trailerAt(nr, nm+1, offs[3])), "MAC counts disagree"},
		{"trailer at another offset", cat(good[:offs[3]], trailerAt(nr, nm, 64)), "the trailer says it is at offset 64"},
		{"route chunk after the MACs", cat(header(nr, nm), macChunk, routeChunk, trailerAt(nr, nm, offs[3])), "route chunk after the MAC chunks"},
		{"route chunk missing", cat(header(nr, nm), macChunk, trailerAt(nr, nm, snapshot.HeaderLen+len(macChunk))), "route counts disagree"},
		{"route chunk twice", cat(good[:offs[2]], routeChunk, macChunk, trailer), "routes so far"},
		{"bytes after the trailer", cat(good, []byte{0}), "1 bytes after the trailer"},
		{"unknown chunk kind", cat(good[:offs[3]], snapshot.AppendChunkHeader(nil, 9, []byte{1}), []byte{1}, trailer), "unknown chunk kind 9"},
		{"magic", cat([]byte("RTMJRNL\x00"), good[8:]), "offset 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "snap")
			if err := os.WriteFile(p, tc.b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := readAll(t, p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) || !offsetRE.MatchString(err.Error()) {
				t.Fatalf("Read = %v, want an error naming %s, an offset and %q", err, p, tc.want)
			}
		})
	}
}

// faultFile fails the Nth write, the header's write or the sync.
type faultFile struct {
	snapshot.File
	writes, failAt       int
	failHeader, failSync bool
}

func (f *faultFile) Write(p []byte) (int, error) {
	if f.writes++; f.writes == f.failAt {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.failHeader {
		return 0, syscall.EIO
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.failSync {
		return syscall.EIO
	}
	return f.File.Sync()
}

// TestWriteFailure fails a write in the middle, the header's write and the
// sync: Write returns the cause, and neither the snapshot nor its temporary
// file is left; a snapshot already in place stays as it was.
func TestWriteFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault faultFile
		cause error
	}{
		{"first write", faultFile{failAt: 1}, syscall.ENOSPC},
		{"third write", faultFile{failAt: 3}, syscall.ENOSPC},
		{"header", faultFile{failHeader: true}, syscall.EIO},
		{"fsync", faultFile{failSync: true}, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, existing := range []bool{false, true} {
				dir := t.TempDir()
				path := filepath.Join(dir, "snapshot")
				if existing {
					write(t, dir, specialRoutes(t), nil)
				}
				fault := tc.fault
				restore := snapshot.SetCreate(func(name string) (snapshot.File, error) {
					f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
					fault.File = f
					return &fault, err
				})
				_, err := snapshot.Write(path, testHeader, slices.Values(manyRoutes(50_000, 1)), testMACs(100))
				restore()
				if !errors.Is(err, tc.cause) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Write = %v, want %v naming %s", err, tc.cause, path)
				}
				names := dirNames(t, dir)
				if want := map[bool][]string{false: nil, true: {"snapshot"}}[existing]; !slices.Equal(names, want) {
					t.Fatalf("directory holds %q after the failed Write, want %q", names, want)
				}
				if existing {
					if _, got, err := readAll(t, path); err != nil || len(got.routes) != len(specialRoutes(t)) {
						t.Fatalf("the snapshot in place: %d routes, %v", len(got.routes), err)
					}
				}
			}
		})
	}
}

// TestBadRoute: a route the reader would refuse makes Write fail, leaving
// nothing behind.
func TestBadRoute(t *testing.T) {
	dir := t.TempDir()
	rs := manyRoutes(100_000, 1)
	rs[70_000].Dst = netip.MustParsePrefix("10.1.2.3/8") // host bits
	_, err := snapshot.Write(filepath.Join(dir, "snapshot"), testHeader, slices.Values(rs), nil)
	if err == nil || !strings.Contains(err.Error(), "route 70000") || !strings.Contains(err.Error(), "host bits") {
		t.Fatalf("Write = %v, want an error naming route 70000 and its host bits", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("directory holds %q after a refused Write", names)
	}
}

// TestNil: nil routes write none; nil callbacks skip what they would get but
// still check it.
func TestNil(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot")
	if _, err := snapshot.Write(path, testHeader, nil, testMACs(4)); err != nil {
		t.Fatal(err)
	}
	_, got, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, got, nil, testMACs(4))
	path, _ = write(t, dir, specialRoutes(t), testMACs(4))
	if h, err := snapshot.Read(path, nil, nil); err != nil || h != testHeader {
		t.Fatalf("Read(nil, nil) = %+v, %v", h, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 1 // in the MAC chunk
	if _, _, err := snapshot.ReadBytes(path, b, nil, nil); err == nil {
		t.Fatal("Read(nil, nil) of a damaged MAC chunk succeeded")
	}
}
