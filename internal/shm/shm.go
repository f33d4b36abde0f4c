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
// # Names and trust
//
// The objects live in /dev/shm, where anyone may create a file. Generation
// N of the segment BASE is named BASE.N.RANDOM, RANDOM being 64 random bits
// in hex, so nobody can create a generation's name before rtmd does; rtmd
// creates it with O_EXCL. A client never looks for a name: rtmd tells it,
// over its socket, and Open checks what the name leads to (a regular file,
// owned by rtmd's uid, as large as its header says) before mapping it.
//
// # Faults
//
// Whoever may write the object (rtmd's uid) may also truncate it under
// every mapping, and a touch of a page past the new end raises SIGBUS. Every
// access here runs with debug.SetPanicOnFault, and a fault inside the
// mapping is turned into an error (ErrTruncated) or a record not found; the
// process goes on.
//
// A Segment (rtmd's side) is not safe for concurrent use. A View is safe
// for concurrent reads.
package shm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Dir is where Linux keeps POSIX shared memory objects (shm_open(3)).
const Dir = "/dev/shm"

// Layout constants.
const (
	magic = "RTMMACv1"
	// Version is the layout version in the header.
	Version    = 1
	headerSize = 64
	// RecordSize is the size of a record, in bytes.
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

// maxBase is the longest base name: with ".GEN.RANDOM" (at most 28 more
// bytes) a generation's name stays under NAME_MAX (255).
const maxBase = 200

// ErrLayout is returned by Open for a segment that is not rtm's, or not of
// this layout version, or shorter than its header says.
var ErrLayout = errors.New("not an rtm MAC segment of layout version 1")

// ErrUntrusted is returned by Open for an object that rtmd cannot have made:
// not a regular file (a FIFO, a symbolic link, a directory), or owned by
// another uid than rtmd's.
var ErrUntrusted = errors.New("not a segment made by rtmd")

// ErrTruncated is returned when a segment's memory is gone under its
// mapping (the object was truncated), or, by Segment.Check, when the
// object is shorter than the segment or no longer linked.
var ErrTruncated = errors.New("segment truncated or removed under its mapping")

// DefaultName returns the base name of the MAC segment of the rtmd on a
// socket path: "rtm-" and a hash of the absolute path, so that two rtmds
// never collide. Generations of the segment are named BASE.N.RANDOM (see
// Create).
func DefaultName(socket string) string {
	abs, err := filepath.Abs(socket)
	if err != nil {
		abs = socket
	}
	h := fnv.New64a()
	h.Write([]byte(abs))
	return fmt.Sprintf("rtm-%016x", h.Sum64())
}

// CheckName reports whether name can name a shared memory object, or be
// the base name of a segment's generations.
func CheckName(name string) error {
	if name == "" || len(name) > maxBase || name == "." || name == ".." {
		return fmt.Errorf("invalid shm name %q: want 1 to %d bytes", name, maxBase)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("invalid shm name %q: only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// genName returns a new name for generation gen of base: one that nobody
// can know before rtmd creates it.
func genName(base string, gen uint32) string {
	var r [8]byte
	rand.Read(r[:]) // never fails (crypto/rand)
	return fmt.Sprintf("%s.%d.%s", base, gen, hex.EncodeToString(r[:]))
}

func path(name string) string { return filepath.Join(Dir, name) }

// words returns the mapping as 64-bit words.
func words(mem []byte) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
}

func load(w []uint64, i int) uint64 { return atomic.LoadUint64(&w[i]) }

func store(w []uint64, i int, v uint64) { atomic.StoreUint64(&w[i], v) }

// Size returns the size in bytes of a segment of capacity records.
func Size(capacity int) int { return headerSize + capacity*RecordSize }

// Unlink removes the shared memory object name. Mappings of it stay valid.
func Unlink(name string) error {
	if err := os.Remove(path(name)); err != nil {
		return fmt.Errorf("shm unlink: %w", err)
	}
	return nil
}

// RemoveStale removes the objects named base or base.*, which a crashed
// rtmd of the same base left behind, and returns their names. It removes
// only regular files owned by this process's effective uid, and never
// follows a symbolic link; it returns the other objects of those names,
// which someone else planted, in foreign, each with what it is.
func RemoveStale(base string) (removed, foreign []string, err error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("removing stale shm objects: %w", err)
	}
	euid := uint32(os.Geteuid())
	for _, e := range ents {
		n := e.Name()
		if n != base && !strings.HasPrefix(n, base+".") {
			continue
		}
		fi, err := os.Lstat(path(n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, foreign, fmt.Errorf("removing stale shm %s: %w", n, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
			return removed, foreign, fmt.Errorf("removing stale shm %s: no owner in its stat", n)
		case !fi.Mode().IsRegular():
			foreign = append(foreign, fmt.Sprintf("%s (%s)", n, fileType(st.Mode)))
			continue
		case st.Uid != euid:
			foreign = append(foreign, fmt.Sprintf("%s (owned by uid %d)", n, st.Uid))
			continue
		}
		// In the sticky /dev/shm only the owner (us) or root can replace
		// the name between the Lstat and here.
		if err := os.Remove(path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, foreign, fmt.Errorf("removing stale shm %s: %w", n, err)
		}
		removed = append(removed, n)
	}
	return removed, foreign, nil
}
