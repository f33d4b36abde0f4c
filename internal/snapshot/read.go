package snapshot

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// Read reads the snapshot at path, calls fn for each route and mac for
// each MAC entry, in the file's order, and returns its header. A nil
// callback skips what it would have been given (still decoded and checked). It streams:
// it holds one chunk (at most MaxChunk bytes, and no more than the file)
// at a time. The Hops of a route passed to fn may be shared with routes
// passed before it and must not be modified.
//
// A file that is cut short, has a damaged byte anywhere, or whose counts
// disagree (header, chunks, trailer) is an error naming the file and the
// offset. Since the callbacks run as the file is read, they may have been
// called for part of the snapshot before such an error: the caller throws
// away what it built. An error from a callback ends the read and is
// returned wrapped.
func Read(path string, fn func(route.Route) error, mac func(MAC) error) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("snapshot read: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Header{}, fmt.Errorf("snapshot read: %w", err)
	}
	r := newReader(path, f, st.Size())
	return r.read(fn, mac)
}

type reader struct {
	path   string
	br     *bufio.Reader
	size   int64
	off    int64 // start of the chunk being read
	buf    []byte
	d      wire.Decoder
	routes uint64 // seen so far
	macs   uint64
}

func newReader(path string, r io.Reader, size int64) *reader {
	return &reader{path: path, br: bufio.NewReaderSize(r, int(min(size, 256<<10))), size: size}
}

// errorf returns an error about the file at offset off.
func (r *reader) errorf(off int64, format string, args ...any) error {
	return fmt.Errorf("snapshot %s: at offset %d: %s", r.path, off, fmt.Sprintf(format, args...))
}

func (r *reader) full(p []byte) error {
	if _, err := io.ReadFull(r.br, p); err != nil {
		return fmt.Errorf("snapshot %s: read at offset %d: %w", r.path, r.off, err)
	}
	return nil
}

func (r *reader) read(fn func(route.Route) error, mac func(MAC) error) (Header, error) {
	var hb [HeaderLen]byte
	n := min(r.size, HeaderLen)
	if err := r.full(hb[:n]); err != nil {
		return Header{}, err
	}
	h, wantRoutes, wantMACs, err := parseHeader(hb[:n])
	if err != nil {
		return Header{}, fmt.Errorf("snapshot %s: bad header: %v", r.path, err)
	}
	r.off = HeaderLen
	var ch [ChunkHeaderLen]byte
	sawMACs := false
	for {
		left := r.size - r.off
		if left == 0 {
			return h, r.errorf(r.off, "the file ends without its trailer: cut short")
		}
		if left < ChunkHeaderLen {
			return h, r.errorf(r.off, "the file ends inside a %d-byte chunk header: cut short", ChunkHeaderLen)
		}
		if err := r.full(ch[:]); err != nil {
			return h, err
		}
		kind := ch[0]
		n := int64(binary.LittleEndian.Uint32(ch[4:]))
		switch {
		case n > MaxChunk:
			return h, r.errorf(r.off, "chunk length %d, more than the %d-byte limit", n, MaxChunk)
		case n > left-ChunkHeaderLen:
			return h, r.errorf(r.off, "chunk length %d, but the file ends after %d: cut short or damaged", n, left-ChunkHeaderLen)
		}
		if int64(cap(r.buf)) < n {
			r.buf = make([]byte, n) // n <= MaxChunk and <= what the file holds
		}
		p := r.buf[:n]
		if err := r.full(p); err != nil {
			return h, err
		}
		sum := crc32.Update(crc32.Checksum(ch[:8], castagnoli), castagnoli, p)
		if want := binary.LittleEndian.Uint32(ch[8:]); sum != want {
			return h, r.errorf(r.off, "chunk checksum %#08x, chunk says %#08x", sum, want)
		}
		if ch[1]|ch[2]|ch[3] != 0 {
			return h, r.errorf(r.off+1, "reserved chunk bytes %x, want zero", ch[1:4])
		}
		switch {
		case kind == kindRoutes && !sawMACs:
			err = r.routeChunk(p, fn)
			if err == nil && r.routes > wantRoutes {
				err = r.errorf(r.off, "%d routes so far, the header says %d", r.routes, wantRoutes)
			}
		case kind == kindMACs:
			sawMACs = true
			err = r.macChunk(p, mac)
			if err == nil && r.macs > wantMACs {
				err = r.errorf(r.off, "%d MAC entries so far, the header says %d", r.macs, wantMACs)
			}
		case kind == kindTrailer:
			return h, r.trailer(p, wantRoutes, wantMACs)
		case kind == kindRoutes:
			err = r.errorf(r.off, "a route chunk after the MAC chunks")
		default:
			err = r.errorf(r.off, "unknown chunk kind %d", kind)
		}
		if err != nil {
			return h, err
		}
		r.off += ChunkHeaderLen + n
	}
}

func (r *reader) routeChunk(p []byte, fn func(route.Route) error) error {
	var ferr error
	err := r.d.Routes(p, func(rt route.Route) {
		if ferr == nil {
			r.routes++
			if fn != nil {
				ferr = fn(rt)
			}
		}
	})
	if err != nil {
		return r.errorf(r.off, "route chunk: %v", err)
	}
	if ferr != nil {
		return fmt.Errorf("snapshot %s: route chunk at offset %d: %w", r.path, r.off, ferr)
	}
	return nil
}

func (r *reader) macChunk(p []byte, fn func(MAC) error) error {
	d := &r.d
	d.Reset(p)
	n := d.U32("count")
	var ferr error
	for i := uint32(0); i < n && d.Err() == nil && ferr == nil; i++ {
		slot := d.U32("slot")
		m, ip, dev := d.MACValue()
		if d.Err() == nil {
			r.macs++
			if fn != nil {
				ferr = fn(MAC{MAC: m, Slot: slot, IP: ip, Dev: dev})
			}
		}
	}
	if ferr != nil {
		return fmt.Errorf("snapshot %s: MAC chunk at offset %d: %w", r.path, r.off, ferr)
	}
	if err := d.Finish(); err != nil {
		return r.errorf(r.off, "MAC chunk: %v", err)
	}
	return nil
}

// trailer checks the trailer chunk at r.off, whose payload is p, and that
// the file ends with it.
func (r *reader) trailer(p []byte, wantRoutes, wantMACs uint64) error {
	if len(p) != trailerLen {
		return r.errorf(r.off, "trailer of %d bytes, want %d", len(p), trailerLen)
	}
	routes, macs, at := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])
	switch {
	case at != uint64(r.off):
		return r.errorf(r.off, "the trailer says it is at offset %d", at)
	case routes != wantRoutes || r.routes != wantRoutes:
		return r.errorf(r.off, "route counts disagree: header %d, chunks %d, trailer %d", wantRoutes, r.routes, routes)
	case macs != wantMACs || r.macs != wantMACs:
		return r.errorf(r.off, "MAC counts disagree: header %d, chunks %d, trailer %d", wantMACs, r.macs, macs)
	}
	if end := r.off + ChunkHeaderLen + trailerLen; end != r.size {
		return r.errorf(end, "%d bytes after the trailer", r.size-end)
	}
	return nil
}
