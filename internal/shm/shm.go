// Package shm is the shared-memory segment that holds rtm's MAC -> IP values:
// rtmd writes it, clients map it read-only and read it without a syscall.
//
// The layout, also in docs/shm.md: a 64-byte header, then fixed 32-byte
// records, all little-endian, addressed by offset only (the segment maps at
// a different address in every process).
//
//	header   0  8  magic "RTMMACv1"
//	         8  4  layout version (1)
//	        12  4  record size (32)
//	        16  4  capacity, in records
//	        20  4  generation
//	        24  8  live records
//	        32  8  record writes
//	        40  8  rtmd's sequence number at the last write
//	        48  8  sequence number of the last flush
//	        56  8  reserved, zero
//	record   0  8  sequence lock: odd while rtmd writes the record
//	         8  6  MAC
//	        14  1  family: 0 free, 4 or 6
//	        15  1  reserved, zero
//	        16 16  IP (IPv4 in the first 4 bytes)
//
// Every access to the segment is a 64-bit atomic load or store, so that
// neither the compiler nor the CPU reorders the data reads of a reader
// around its two reads of the sequence lock. There is one writer, rtmd's
// loop; readers never block it, and retry a read that overlapped a write.
//
// A Segment (rtmd's side) is not safe for concurrent use. A View is safe
// for concurrent reads.
package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
)

// Dir is where Linux keeps POSIX shared memory objects (shm_open(3)).
const Dir = "/dev/shm"

const (
	magic      = "RTMMACv1"
	Version    = 1
	headerSize = 64
	RecordSize = 32
)

// Header word offsets, in uint64 words.
const (
	hMagic   = 0
	hVersion = 1 // version | record size << 32
	hCap     = 2 // capacity | generation << 32
	hLive    = 3
	hWrites  = 4
	hSeq     = 5
	hFlush   = 6
)

// ErrLayout is returned by Open for a segment that is not rtm's, or not of
// this layout version.
var ErrLayout = errors.New("not an rtm MAC segment of layout version 1")

// DefaultName returns the base name of the MAC segment of the rtmd on a
// socket path: "rtm-" and a hash of the absolute path, so that two rtmds
// never collide. Generations of the segment are named BASE.1, BASE.2, ...
func DefaultName(socket string) string {
	abs, err := filepath.Abs(socket)
	if err != nil {
		abs = socket
	}
	h := fnv.New64a()
	h.Write([]byte(abs))
	return fmt.Sprintf("rtm-%016x", h.Sum64())
}

// Latest returns the name of the newest generation of the segment base.
func Latest(base string) (string, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return "", err
	}
	best, bestGen := "", -1
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		if gen, err := strconv.Atoi(rest); err == nil && gen > bestGen {
			best, bestGen = e.Name(), gen
		}
	}
	if best == "" {
		return "", fmt.Errorf("no MAC segment %s.N in %s: is rtmd running, with this socket or -shm name?", base, Dir)
	}
	return best, nil
}

// CheckName reports whether name can name a shared memory object.
func CheckName(name string) error {
	if name == "" || len(name) > 200 || name == "." || name == ".." {
		return fmt.Errorf("invalid shm name %q", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("invalid shm name %q: only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

func path(name string) string { return filepath.Join(Dir, name) }

// words returns the mapping as 64-bit words.
func words(mem []byte) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
}

func load(w []uint64, i int) uint64 { return atomic.LoadUint64(&w[i]) }

func store(w []uint64, i int, v uint64) { atomic.StoreUint64(&w[i], v) }

// Segment is rtmd's read-write mapping of one generation of the segment.
type Segment struct {
	Name     string
	Capacity int
	Gen      uint32
	mem      []byte
	w        []uint64
}

// Size returns the size in bytes of a segment of capacity records.
func Size(capacity int) int { return headerSize + capacity*RecordSize }

// Create creates the shared memory object name (which must not exist) with
// room for capacity records, maps it and writes its header.
func Create(name string, capacity int, gen uint32) (*Segment, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path(name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("shm create: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o640); err != nil { // against the umask
		os.Remove(path(name))
		return nil, fmt.Errorf("shm create: %w", err)
	}
	size := Size(capacity)
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path(name))
		return nil, fmt.Errorf("shm create %q: %w", name, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		os.Remove(path(name))
		return nil, fmt.Errorf("shm create %q: %w", name, os.NewSyscallError("mmap", err))
	}
	s := &Segment{Name: name, Capacity: capacity, Gen: gen, mem: mem, w: words(mem)}
	store(s.w, hVersion, Version|RecordSize<<32)
	store(s.w, hCap, uint64(capacity)|uint64(gen)<<32)
	store(s.w, hMagic, binary.LittleEndian.Uint64([]byte(magic)))
	return s, nil
}

// Set writes a record: the sequence lock goes odd, the data is written, and
// the lock goes even again.
func (s *Segment) Set(slot int, m mac.Addr, ip netip.Addr) {
	i := (headerSize + slot*RecordSize) / 8
	seq := load(s.w, i)
	store(s.w, i, seq+1)
	fam := uint64(4)
	if ip.Is6() {
		fam = 6
	}
	a := ip.As16()
	if ip.Is4() {
		a4 := ip.As4()
		a = [16]byte{a4[0], a4[1], a4[2], a4[3]}
	}
	var mw [8]byte
	copy(mw[:], m[:])
	store(s.w, i+1, binary.LittleEndian.Uint64(mw[:])|fam<<48)
	store(s.w, i+2, binary.LittleEndian.Uint64(a[:8]))
	store(s.w, i+3, binary.LittleEndian.Uint64(a[8:]))
	store(s.w, i, seq+2)
	store(s.w, hWrites, load(s.w, hWrites)+1)
}

// Clear frees a record.
func (s *Segment) Clear(slot int) {
	i := (headerSize + slot*RecordSize) / 8
	seq := load(s.w, i)
	store(s.w, i, seq+1)
	store(s.w, i+1, 0)
	store(s.w, i+2, 0)
	store(s.w, i+3, 0)
	store(s.w, i, seq+2)
	store(s.w, hWrites, load(s.w, hWrites)+1)
}

// Read returns the record in slot, as View.Read does.
func (s *Segment) Read(slot int) (mac.Addr, netip.Addr, bool) {
	v := View{Capacity: s.Capacity, w: s.w}
	return v.Read(slot)
}

// SetCounters writes the header's live-record count and sequence number.
func (s *Segment) SetCounters(live int, seq uint64) {
	store(s.w, hLive, uint64(live))
	store(s.w, hSeq, seq)
}

// SetFlush records the sequence number of a flush, for clients that are
// signalled before the stream brings it.
func (s *Segment) SetFlush(seq uint64) { store(s.w, hFlush, seq) }

// Close unmaps the segment; the object stays until Unlink.
func (s *Segment) Close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem, s.w = nil, nil
	return err
}

// Unlink removes the shared memory object name. Mappings of it stay valid.
func Unlink(name string) error {
	if err := os.Remove(path(name)); err != nil {
		return fmt.Errorf("shm unlink: %w", err)
	}
	return nil
}

// RemoveStale removes the objects named prefix or prefix.N, which a
// crashed rtmd of the same name left behind, and returns their names.
func RemoveStale(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		n := e.Name()
		if n == prefix || strings.HasPrefix(n, prefix+".") {
			if err := os.Remove(path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return removed, fmt.Errorf("removing stale shm %s: %w", n, err)
			}
			removed = append(removed, n)
		}
	}
	return removed, nil
}

// View is a client's read-only mapping of one generation of the segment.
type View struct {
	Name     string
	Capacity int
	Gen      uint32
	mem      []byte
	w        []uint64
}

// Open maps the object name read-only and checks its header.
func Open(name string) (*View, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(path(name))
	if err != nil {
		return nil, fmt.Errorf("shm open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm open: %w", err)
	}
	size := fi.Size()
	if size < headerSize || size > 1<<40 {
		return nil, fmt.Errorf("shm open %q: %d bytes: %w", name, size, ErrLayout)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm open %q: %w", name, os.NewSyscallError("mmap", err))
	}
	w := words(mem)
	v := &View{Name: name, mem: mem, w: w}
	capGen := load(w, hCap)
	v.Capacity, v.Gen = int(uint32(capGen)), uint32(capGen>>32)
	switch {
	case load(w, hMagic) != binary.LittleEndian.Uint64([]byte(magic)),
		load(w, hVersion) != Version|RecordSize<<32,
		int64(Size(v.Capacity)) > size:
		unix.Munmap(mem)
		return nil, fmt.Errorf("shm open %q: %w", name, ErrLayout)
	}
	return v, nil
}

// Read returns the record in slot: its MAC and IP, and whether it is in
// use. It never blocks rtmd; it retries while a write overlaps it, and gives
// up (not in use) on a record whose lock stays odd, as one would if rtmd
// died in the middle of writing it.
func (v *View) Read(slot int) (m mac.Addr, ip netip.Addr, ok bool) {
	if slot < 0 || slot >= v.Capacity {
		return mac.Addr{}, netip.Addr{}, false
	}
	i := (headerSize + slot*RecordSize) / 8
	for try := 0; ; try++ {
		s1 := load(v.w, i)
		if s1&1 == 0 {
			w1, w2, w3 := load(v.w, i+1), load(v.w, i+2), load(v.w, i+3)
			if load(v.w, i) == s1 {
				return decode(w1, w2, w3)
			}
		}
		if try > 100 {
			if try > 100_000 {
				return mac.Addr{}, netip.Addr{}, false
			}
			runtime.Gosched()
		}
	}
}

func decode(w1, w2, w3 uint64) (m mac.Addr, ip netip.Addr, ok bool) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], w1)
	copy(m[:], b[:6])
	var a [16]byte
	binary.LittleEndian.PutUint64(a[:8], w2)
	binary.LittleEndian.PutUint64(a[8:], w3)
	switch b[6] {
	case 4:
		return m, netip.AddrFrom4([4]byte(a[:4])), true
	case 6:
		return m, netip.AddrFrom16(a), true
	}
	return mac.Addr{}, netip.Addr{}, false
}

// Find scans the records for m: for a reader that has no key list.
func (v *View) Find(m mac.Addr) (netip.Addr, bool) {
	for slot := range v.Capacity {
		if got, ip, ok := v.Read(slot); ok && got == m {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Seq returns the sequence number rtmd last wrote in the header.
func (v *View) Seq() uint64 { return load(v.w, hSeq) }

// Flush returns the sequence number of the last flush, from the header.
func (v *View) Flush() uint64 { return load(v.w, hFlush) }

// Live returns the live-record count in the header.
func (v *View) Live() int { return int(load(v.w, hLive)) }

// Close unmaps the view.
func (v *View) Close() error {
	if v.mem == nil {
		return nil
	}
	err := unix.Munmap(v.mem)
	v.mem, v.w = nil, nil
	return err
}
