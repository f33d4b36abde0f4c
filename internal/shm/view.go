package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
)

// View is a client's read-only mapping of one generation of the segment.
//
// Its reads run under fault protection: if the object is truncated under
// the mapping, a read reports the record not in use (and Faulted reports
// true) instead of killing the process.
type View struct {
	Name     string
	Capacity int
	Gen      uint32
	mem      []byte
	w        []uint64
	faulted  atomic.Bool
}

// Open maps the object name read-only, after checking that rtmd made it:
// it opens /dev/shm/NAME with O_NOFOLLOW and O_NONBLOCK (a symbolic link
// is refused, a FIFO does not block), and accepts only a regular file
// owned by one of owners (the uid of the rtmd that named it), at least as
// large as the header and as the capacity the header states. An object
// that fails the first two checks gives an error wrapping ErrUntrusted;
// one of another layout or size, ErrLayout.
func Open(name string, owners ...uint32) (*View, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if len(owners) == 0 {
		return nil, fmt.Errorf("shm open %s: no owner to check it against", name)
	}
	fd, err := unix.Open(path(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("shm open %s: a symbolic link: %w", name, ErrUntrusted)
	}
	if err != nil {
		return nil, fmt.Errorf("shm open %s: %w", name, os.NewSyscallError("open", err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm open %s: %w", name, os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("shm open %s: %s, not a regular file: %w", name, fileType(st.Mode), ErrUntrusted)
	}
	trusted := false
	for _, uid := range owners {
		trusted = trusted || st.Uid == uid
	}
	if !trusted {
		return nil, fmt.Errorf("shm open %s: owned by uid %d, want rtmd's uid %d: %w", name, st.Uid, owners[0], ErrUntrusted)
	}
	size := st.Size
	if size < headerSize || size > 1<<40 {
		return nil, fmt.Errorf("shm open %s: %d bytes, shorter than the %d-byte header: %w", name, size, headerSize, ErrLayout)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm open %s: %w", name, os.NewSyscallError("mmap", err))
	}
	v := &View{Name: name, mem: mem, w: words(mem)}
	if err := v.checkHeader(size); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("shm open %s: %w", name, err)
	}
	return v, nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}

// checkHeader reads the header of a new mapping of size bytes, which may
// have been truncated since the fstat.
func (v *View) checkHeader(size int64) (err error) {
	defer v.Unguard(v.Guard(), &err)
	capGen := load(v.w, hCap)
	v.Capacity, v.Gen = int(uint32(capGen)), uint32(capGen>>32)
	switch {
	case load(v.w, hMagic) != binary.LittleEndian.Uint64([]byte(magic)),
		load(v.w, hVersion) != Version|RecordSize<<32:
		return ErrLayout
	case int64(Size(v.Capacity)) > size:
		return fmt.Errorf("%d bytes, but the header says %d records (%d bytes): %w", size, v.Capacity, Size(v.Capacity), ErrLayout)
	}
	return nil
}

// Guard turns on fault protection for the calling goroutine, for a batch
// of ReadUnguarded calls, and returns the goroutine's previous setting for
// Unguard. Use the pair as
//
//	defer v.Unguard(v.Guard(), &err)
//
// at the top of a function that reads v in a loop: a fault in the mapping
// then ends that function, with err set to an error wrapping ErrTruncated,
// and Faulted reports true. That costs one Guard per batch, where Read
// costs one per read.
func (v *View) Guard() bool { return debug.SetPanicOnFault(true) }

// Unguard ends what Guard began; it must be deferred (see Guard). It
// restores the goroutine's setting, and recovers a fault in the mapping
// into err; any other panic goes on.
func (v *View) Unguard(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		*err = fmt.Errorf("shm %s: %w", v.Name, inMapping(r, v.mem)) // or panics on
		v.faulted.Store(true)
	}
}

// Faulted reports whether a read of the view has faulted: the object was
// truncated under it, and it will not give values again.
func (v *View) Faulted() bool { return v.faulted.Load() }

// Read returns the record in slot: its MAC and IP, and whether it is in
// use. It never blocks rtmd; it retries while a write overlaps it, and gives
// up (not in use) on a record whose lock stays odd, as one would if rtmd
// died in the middle of writing it. A record whose memory is gone (the
// object was truncated) is not in use either.
func (v *View) Read(slot int) (m mac.Addr, ip netip.Addr, ok bool) {
	if slot < 0 || slot >= v.Capacity {
		return mac.Addr{}, netip.Addr{}, false
	}
	var err error
	defer v.Unguard(v.Guard(), &err)
	// ReadUnguarded, without a second call on the hot path.
	i := (headerSize + slot*RecordSize) / 8
	r := v.w[i : i+4]
	s1 := load(r, 0)
	w1, w2, w3 := load(r, 1), load(r, 2), load(r, 3)
	if s1&1 == 0 && load(r, 0) == s1 {
		return decode(w1, w2, w3)
	}
	return v.retry(i)
}

// ReadUnguarded is Read without fault protection of its own, for a loop
// under Guard: a read of a truncated object faults, which kills the process
// unless the caller set Guard.
func (v *View) ReadUnguarded(slot int) (m mac.Addr, ip netip.Addr, ok bool) {
	if slot < 0 || slot >= v.Capacity {
		return mac.Addr{}, netip.Addr{}, false
	}
	i := (headerSize + slot*RecordSize) / 8
	if w1, w2, w3, ok := v.try(i); ok {
		return decode(w1, w2, w3)
	}
	return v.retry(i)
}

// try reads the record at word i once: its data words, and whether they
// are all of one write (the lock was even, and unchanged after them).
func (v *View) try(i int) (w1, w2, w3 uint64, ok bool) {
	r := v.w[i : i+4]
	s1 := load(r, 0)
	w1, w2, w3 = load(r, 1), load(r, 2), load(r, 3)
	return w1, w2, w3, s1&1 == 0 && load(r, 0) == s1
}

// retry reads the record at word i while writes overlap the reads, and
// gives up after 100,000 tries.
func (v *View) retry(i int) (m mac.Addr, ip netip.Addr, ok bool) {
	for try := 0; try < 100_000; try++ {
		if try > 100 {
			runtime.Gosched()
		}
		if w1, w2, w3, ok := v.try(i); ok {
			return decode(w1, w2, w3)
		}
	}
	return mac.Addr{}, netip.Addr{}, false
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

// Find scans the records for m, for a reader that has no key list. It
// returns an error wrapping ErrTruncated if the object was truncated under
// the view.
func (v *View) Find(m mac.Addr) (ip netip.Addr, found bool, err error) {
	defer v.Unguard(v.Guard(), &err)
	for slot := range v.Capacity {
		if got, ip, ok := v.ReadUnguarded(slot); ok && got == m {
			return ip, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// header returns header word i, or 0 if the object was truncated.
func (v *View) header(i int) (x uint64) {
	var err error
	defer v.Unguard(v.Guard(), &err)
	return load(v.w, i)
}

// Seq returns the sequence number rtmd last wrote in the header (0 if the
// object was truncated).
func (v *View) Seq() uint64 { return v.header(hSeq) }

// Flush returns the sequence number of the last flush, from the header (0
// if the object was truncated).
func (v *View) Flush() uint64 { return v.header(hFlush) }

// Live returns the live-record count in the header (0 if the object was
// truncated).
func (v *View) Live() int { return int(v.header(hLive)) }

// Close unmaps the view.
func (v *View) Close() error {
	if v.mem == nil {
		return nil
	}
	err := unix.Munmap(v.mem)
	v.mem, v.w = nil, nil
	return err
}
