package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Reader reads a journal's commits in order. The zero value is not usable;
// call Open.
type Reader struct {
	path   string
	f      *os.File // nil when reading from memory
	ra     io.ReaderAt
	br     *bufio.Reader
	size   int64
	off    int64 // end of the last whole commit
	hdr    Header
	buf    []byte                // the payloads of the commit being read, back to back
	ends   []int                 // where each ends in buf
	commit [][]byte              // what Next returned last
	rh     [RecordHeaderLen]byte // here, not on the stack: io.ReadFull would move it to the heap
	err    error                 // sticky: io.EOF or a *DamageError
}

// Open opens the journal at path and reads its header. A header that is
// not a valid version-1 header is an error naming the file and the field's
// offset.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal stat: %w", err)
	}
	r, err := newReader(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

func newReader(path string, ra io.ReaderAt, size int64) (*Reader, error) {
	var hb [HeaderLen]byte
	n, err := ra.ReadAt(hb[:], 0)
	if err != nil && !(errors.Is(err, io.EOF) && n < HeaderLen) {
		return nil, fmt.Errorf("journal %s: read header: %w", path, err)
	}
	h, err := parseHeader(hb[:min(int64(n), size)])
	if err != nil {
		return nil, fmt.Errorf("journal %s: bad header: %v", path, err)
	}
	return &Reader{
		path: path,
		ra:   ra,
		br:   bufio.NewReaderSize(io.NewSectionReader(ra, HeaderLen, size-HeaderLen), int(min(size, 1<<20))),
		size: size,
		off:  HeaderLen,
		hdr:  h,
	}, nil
}

// Header returns the journal's header.
func (r *Reader) Header() Header { return r.hdr }

// Offset returns the end of the last commit Next returned: the length of
// the valid prefix read so far.
func (r *Reader) Offset() int64 { return r.off }

// Size returns the file's size when it was opened.
func (r *Reader) Size() int64 { return r.size }

// Next returns the payloads of the next commit, in the order they were
// appended, valid until the next call. It returns a commit only when all
// of its records are whole. At the end of a whole journal it returns
// io.EOF; at damage it returns a *DamageError, Torn for a torn tail, at
// the start of the commit the damage is in. Once it has returned an error
// it returns the same error again. It holds the commit in memory: a big
// load's commit takes as much as its payloads, never more than the file.
func (r *Reader) Next() ([][]byte, error) {
	if err := r.readCommit(true); err != nil {
		return nil, err
	}
	r.commit = r.commit[:0]
	start := 0
	for _, end := range r.ends {
		r.commit = append(r.commit, r.buf[start:end:end])
		start = end
	}
	return r.commit, nil
}

// readCommit reads the next commit and moves r.off past it. With keep it
// leaves the payloads in r.buf, ending at r.ends; without, r.buf holds
// one record at a time, for Check, which need not hold a big commit.
func (r *Reader) readCommit(keep bool) error {
	if r.err != nil {
		return r.err
	}
	if r.off == r.size {
		r.err = io.EOF
		return r.err
	}
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	for off := r.off; ; {
		if !keep {
			r.buf, r.ends = r.buf[:0], r.ends[:0]
		}
		n, more, err := r.record(off)
		if err != nil {
			r.err = err
			return err
		}
		off += RecordHeaderLen + n
		if !more {
			r.off = off
			return nil
		}
		if off == r.size {
			r.err = r.damage(true, fmt.Sprintf("the file ends inside a commit: the record before offset %d says more follow", off))
			return r.err
		}
	}
}

// record reads the record at off, the next of the commit at r.off, and
// appends its payload to r.buf. It returns the payload's length and
// whether the commit goes on after it.
func (r *Reader) record(off int64) (n int64, more bool, err error) {
	left := r.size - off
	if left < RecordHeaderLen {
		return 0, false, r.bad(off, true, fmt.Sprintf("the file ends inside the %d-byte record header", RecordHeaderLen))
	}
	rh := r.rh[:]
	if _, err := io.ReadFull(r.br, rh); err != nil {
		return 0, false, fmt.Errorf("journal %s: read at offset %d: %w", r.path, off, err)
	}
	field := binary.LittleEndian.Uint32(rh[:])
	n, more = int64(field&^More), field&More != 0
	sum := binary.LittleEndian.Uint32(rh[4:])
	if got, want := crc32.Checksum(rh[:8], castagnoli), binary.LittleEndian.Uint32(rh[8:]); got != want {
		// The length cannot be trusted, so what follows is judged from
		// the end of the record header.
		return 0, false, r.badRecord(off, fmt.Sprintf("record header checksum %#08x, record says %#08x (length field %#x)", got, want, field), off+RecordHeaderLen)
	}
	// The header is what a writer wrote: a length it never writes is
	// damage, and a payload cut short is a torn tail.
	switch {
	case n == 0:
		return 0, false, r.bad(off, false, "length 0 in a valid record header")
	case n > MaxPayload:
		return 0, false, r.bad(off, false, fmt.Sprintf("length %d in a valid record header, more than the %d-byte limit", n, MaxPayload))
	case n > left-RecordHeaderLen:
		return 0, false, r.bad(off, true, fmt.Sprintf("length %d, but the file ends after %d", n, left-RecordHeaderLen))
	}
	have := len(r.buf)
	if need := int64(have) + n; int64(cap(r.buf)) < need {
		// Grown by hand: never more than the file holds.
		buf := make([]byte, have, min(max(need, 2*int64(cap(r.buf))), r.size))
		copy(buf, r.buf)
		r.buf = buf
	}
	p := r.buf[have : have+int(n)]
	if _, err := io.ReadFull(r.br, p); err != nil {
		return 0, false, fmt.Errorf("journal %s: read at offset %d: %w", r.path, off+RecordHeaderLen, err)
	}
	if got := crc32.Checksum(p, castagnoli); got != sum {
		return 0, false, r.badRecord(off, fmt.Sprintf("payload checksum %#08x, record says %#08x", got, sum), off+RecordHeaderLen+n)
	}
	r.buf = r.buf[:have+int(n)]
	r.ends = append(r.ends, len(r.buf))
	return n, more, nil
}

// badRecord reports the record at off, whose bytes up to from are all in
// the file but fail a check (the record header's or the payload's). It is
// a torn tail when nothing but zero bytes follows from: the last write was
// cut short, and perhaps the file system had grown the file without writing
// the data. Anything else is damage.
func (r *Reader) badRecord(off int64, reason string, from int64) error {
	zero, err := r.zeroFrom(from)
	if err != nil {
		return fmt.Errorf("journal %s: read at offset %d: %w", r.path, from, err)
	}
	switch {
	case from == r.size:
		return r.bad(off, true, reason+"; nothing follows")
	case zero:
		return r.bad(off, true, reason+"; only zero bytes follow")
	}
	return r.bad(off, false, reason)
}

func (r *Reader) zeroFrom(off int64) (bool, error) {
	buf := make([]byte, min(r.size-off, 64<<10))
	for off < r.size {
		n, err := r.ra.ReadAt(buf[:min(int64(len(buf)), r.size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off >= r.size) {
			return false, err
		}
	}
	return true, nil
}

// bad reports the record at off, in the commit at r.off, as damage or a
// torn tail: either loses the whole commit.
func (r *Reader) bad(off int64, torn bool, reason string) error {
	if off != r.off {
		reason = fmt.Sprintf("record at offset %d, inside the commit: %s", off, reason)
	}
	return r.damage(torn, reason)
}

func (r *Reader) damage(torn bool, reason string) error {
	return &DamageError{Path: r.path, Offset: r.off, Size: r.size, Torn: torn, Reason: reason}
}

// Close closes the file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// Check reads the journal at path to its end and returns its header and
// the length of its valid prefix, which ends with a whole commit. A torn
// tail or damage is returned as the *DamageError, with the header and the
// prefix's length. It holds one record in memory at a time, not a commit.
func Check(path string) (Header, int64, error) {
	r, err := Open(path)
	if err != nil {
		return Header{}, 0, err
	}
	defer r.Close()
	for {
		if err := r.readCommit(false); err != nil {
			if err == io.EOF {
				err = nil
			}
			return r.Header(), r.Offset(), err
		}
	}
}

// Repair cuts the journal at path back to its valid prefix, the end of its
// last whole commit, and syncs it.
// It returns the *DamageError it cut off, or nil if the journal was whole.
// A bad header is not repaired: without it the records mean nothing.
func Repair(path string) (*DamageError, error) {
	_, _, err := Check(path)
	var d *DamageError
	if err == nil || !errors.As(err, &d) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("journal repair: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(d.Offset); err != nil {
		return nil, fmt.Errorf("journal repair: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("journal repair: sync %s: %w", path, err)
	}
	return d, f.Close()
}
