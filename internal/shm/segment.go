package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
)

// Segment is rtmd's read-write mapping of one generation of the segment.
//
// Its writes run under fault protection: if someone truncated the object,
// a write returns an error wrapping ErrTruncated instead of killing rtmd,
// and the caller moves its table to a new generation.
type Segment struct {
	Name     string
	Capacity int
	Gen      uint32
	fd       int // kept open for Check
	mem      []byte
	w        []uint64
}

// Create creates generation gen of the segment base with room for capacity
// records, maps it and writes its header. The object's name is
// BASE.GEN.RANDOM (Segment.Name), created with O_EXCL and O_NOFOLLOW, mode
// 0640 whatever the umask; gid, if not -1, becomes its group, so that the
// members of rtmd's -group can read it.
func Create(base string, capacity int, gen uint32, gid int) (*Segment, error) {
	if err := CheckName(base); err != nil {
		return nil, err
	}
	if capacity < 1 || Size(capacity) > 1<<40 {
		return nil, fmt.Errorf("shm create %s: capacity %d out of range", base, capacity)
	}
	name := genName(base, gen)
	fd, err := unix.Open(path(name), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("shm create %s: %w", name, os.NewSyscallError("open", err))
	}
	fail := func(op string, err error) (*Segment, error) {
		unix.Close(fd)
		os.Remove(path(name))
		return nil, fmt.Errorf("shm create %s: %w", name, os.NewSyscallError(op, err))
	}
	if err := unix.Fchmod(fd, 0o640); err != nil { // against the umask
		return fail("fchmod", err)
	}
	if gid != -1 {
		if err := unix.Fchown(fd, -1, gid); err != nil {
			return fail("fchown", err)
		}
	}
	size := Size(capacity)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	s := &Segment{Name: name, Capacity: capacity, Gen: gen, fd: fd, mem: mem, w: words(mem)}
	if err := s.writeHeader(); err != nil {
		s.Close()
		os.Remove(path(name))
		return nil, fmt.Errorf("shm create %s: %w", name, err)
	}
	return s, nil
}

func (s *Segment) writeHeader() (err error) {
	defer s.endWrite(debug.SetPanicOnFault(true), &err)
	store(s.w, hVersion, Version|RecordSize<<32)
	store(s.w, hCap, uint64(s.Capacity)|uint64(s.Gen)<<32)
	store(s.w, hMagic, binary.LittleEndian.Uint64([]byte(magic)))
	return nil
}

// endWrite ends a write begun under debug.SetPanicOnFault: it restores the
// goroutine's setting and turns a fault in the mapping into an error.
func (s *Segment) endWrite(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		*err = fmt.Errorf("shm %s: %w", s.Name, inMapping(r, s.mem))
	}
}

func (s *Segment) checkSlot(slot int) error {
	if slot < 0 || slot >= s.Capacity {
		return fmt.Errorf("shm %s: slot %d out of range [0, %d)", s.Name, slot, s.Capacity)
	}
	return nil
}

// Set writes a record: the sequence lock goes odd, the data is written, and
// the lock goes even again.
func (s *Segment) Set(slot int, m mac.Addr, ip netip.Addr) (err error) {
	if err := s.checkSlot(slot); err != nil {
		return err
	}
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
	defer s.endWrite(debug.SetPanicOnFault(true), &err)
	i := (headerSize + slot*RecordSize) / 8
	seq := load(s.w, i)
	store(s.w, i, seq+1)
	store(s.w, i+1, binary.LittleEndian.Uint64(mw[:])|fam<<48)
	store(s.w, i+2, binary.LittleEndian.Uint64(a[:8]))
	store(s.w, i+3, binary.LittleEndian.Uint64(a[8:]))
	store(s.w, i, seq+2)
	store(s.w, hWrites, load(s.w, hWrites)+1)
	return nil
}

// Clear frees a record.
func (s *Segment) Clear(slot int) (err error) {
	if err := s.checkSlot(slot); err != nil {
		return err
	}
	defer s.endWrite(debug.SetPanicOnFault(true), &err)
	i := (headerSize + slot*RecordSize) / 8
	seq := load(s.w, i)
	store(s.w, i, seq+1)
	store(s.w, i+1, 0)
	store(s.w, i+2, 0)
	store(s.w, i+3, 0)
	store(s.w, i, seq+2)
	store(s.w, hWrites, load(s.w, hWrites)+1)
	return nil
}

// Read returns the record in slot, as View.Read does.
func (s *Segment) Read(slot int) (mac.Addr, netip.Addr, bool) {
	v := View{Name: s.Name, Capacity: s.Capacity, mem: s.mem, w: s.w}
	return v.Read(slot)
}

// SetCounters writes the header's live-record count and sequence number.
func (s *Segment) SetCounters(live int, seq uint64) (err error) {
	defer s.endWrite(debug.SetPanicOnFault(true), &err)
	store(s.w, hLive, uint64(live))
	store(s.w, hSeq, seq)
	return nil
}

// SetFlush records the sequence number of a flush, for clients that are
// signalled before the stream brings it.
func (s *Segment) SetFlush(seq uint64) (err error) {
	defer s.endWrite(debug.SetPanicOnFault(true), &err)
	store(s.w, hFlush, seq)
	return nil
}

// Check reports, with an error wrapping ErrTruncated, whether the object
// is shorter than the segment (someone truncated it: the next access past
// its end would fault) or no longer linked (clients could not open it).
// It costs one fstat.
func (s *Segment) Check() error {
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return fmt.Errorf("shm %s: %w", s.Name, os.NewSyscallError("fstat", err))
	}
	switch {
	case st.Size < int64(len(s.mem)):
		return fmt.Errorf("shm %s: %d bytes, want %d: %w", s.Name, st.Size, len(s.mem), ErrTruncated)
	case st.Nlink == 0:
		return fmt.Errorf("shm %s: unlinked: %w", s.Name, ErrTruncated)
	}
	return nil
}

// Close unmaps the segment; the object stays until Unlink.
func (s *Segment) Close() error {
	if s.mem == nil {
		return nil
	}
	err := errors.Join(unix.Munmap(s.mem), unix.Close(s.fd))
	s.mem, s.w = nil, nil
	return err
}
