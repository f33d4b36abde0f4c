package snapshot

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/state"
	"github.com/rtm-project/rtm/internal/wire"
)

// file is what Write needs of an *os.File; tests put failures behind it.
type file interface {
	Write(p []byte) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Close() error
}

// createFile creates the temporary file; tests replace it.
var createFile = func(name string) (file, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// Write writes a snapshot of header h, the routes and the MAC entries to
// path and returns its size; routes may be nil for none. It writes path+".tmp" (which must not exist:
// one left by a crash is for the caller, who holds the state directory's
// lock, to remove), syncs it, renames it to path and syncs the directory,
// so path holds either the old file or the whole new one. On any error the
// temporary file is removed; an error from the last step, syncing the
// directory, leaves the whole new file at path but perhaps not durably, so
// the caller must not yet drop what the snapshot replaces.
//
// The routes are encoded as they come, about 64 KiB at a time. A route
// that does not validate, and a MAC entry with an invalid IP, a zone, or a
// bad interface name, is refused: Read would refuse the file.
func Write(path string, h Header, routes iter.Seq[route.Route], macs []MAC) (size int64, err error) {
	for i, m := range macs {
		if err := checkMAC(m); err != nil {
			return 0, fmt.Errorf("snapshot write %s: MAC entry %d (%v): %v", path, i, m.MAC, err)
		}
	}
	tmp := path + ".tmp"
	f, err := createFile(tmp)
	if err != nil {
		return 0, fmt.Errorf("snapshot write %s: %w", path, err)
	}
	w := &writer{f: f, bw: bufio.NewWriterSize(f, 256<<10)}
	defer func() {
		if err != nil {
			if !w.closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	w.write(make([]byte, HeaderLen)) // the counts are known at the end
	rw := wire.RouteWriter{Typ: wire.TSnapshot}
	if routes == nil {
		routes = func(func(route.Route) bool) {}
	}
	for r := range routes {
		// The reader validates every route; a snapshot it would refuse
		// must not replace a journal.
		if err := r.Validate(); err != nil {
			w.err = fmt.Errorf("route %d (%v): %w", w.routes, r.Dst, err)
			break
		}
		rw.Add(r)
		w.routes++
		if rw.Full() {
			if w.chunk(kindRoutes, rw.Flush()[wire.HeaderLen:]); w.err != nil {
				break
			}
		}
	}
	if b := rw.Flush(); len(b) > 0 {
		w.chunk(kindRoutes, b[wire.HeaderLen:])
	}
	p := make([]byte, 4, chunkTarget+64)
	for _, m := range macs {
		p = binary.LittleEndian.AppendUint32(p, m.Slot)
		p = append(p, m.MAC[:]...)
		p = wire.AppendAddr(p, m.IP)
		p = wire.AppendDev(p, m.Dev)
		w.macs++
		binary.LittleEndian.PutUint32(p, binary.LittleEndian.Uint32(p)+1)
		if len(p) >= chunkTarget {
			w.chunk(kindMACs, p)
			p = p[:4]
			binary.LittleEndian.PutUint32(p, 0)
		}
	}
	if len(p) > 4 {
		w.chunk(kindMACs, p)
	}
	p = binary.LittleEndian.AppendUint64(p[:0], w.routes)
	p = binary.LittleEndian.AppendUint64(p, w.macs)
	p = binary.LittleEndian.AppendUint64(p, uint64(w.off))
	w.chunk(kindTrailer, p)
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err != nil {
		return 0, fmt.Errorf("snapshot write %s: %w", path, w.err)
	}
	if _, err := f.WriteAt(appendHeader(nil, h, w.routes, w.macs), 0); err != nil {
		return 0, fmt.Errorf("snapshot write %s: header: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("snapshot write %s: fsync: %w", path, err)
	}
	w.closed = true
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("snapshot write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("snapshot write: %w", err)
	}
	if err := state.SyncDir(filepath.Dir(path)); err != nil {
		return 0, fmt.Errorf("snapshot write %s: %w", path, err)
	}
	return w.off, nil
}

// writer writes chunks through a buffer, counting; its first error sticks.
type writer struct {
	f      file
	bw     *bufio.Writer
	off    int64
	routes uint64
	macs   uint64
	hdr    [ChunkHeaderLen]byte
	err    error
	closed bool
}

func (w *writer) write(p []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(p)
	w.off += int64(n)
	w.err = err
}

func (w *writer) chunk(kind byte, p []byte) {
	w.write(appendChunkHeader(w.hdr[:0], kind, p))
	w.write(p)
}

func checkMAC(m MAC) error {
	switch {
	case !m.IP.IsValid():
		return fmt.Errorf("no IP address")
	case m.IP.Zone() != "":
		return fmt.Errorf("IP %v has a zone", m.IP)
	case m.IP.Is4In6():
		return fmt.Errorf("IP %v is IPv4-mapped", m.IP)
	}
	if m.Dev != "" {
		return route.CheckDev(m.Dev)
	}
	return nil
}
