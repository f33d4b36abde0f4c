package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rtm-project/rtm/internal/state"
	"slices"
)

// file is what a Writer needs of an *os.File; tests put failures behind it.
type file interface {
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Writer appends records to a journal. Append buffers; Commit writes the
// buffer in one write and syncs it, so the records of one loop turn share
// one fsync, and marks them as one commit, which a Reader returns whole or
// not at all. The zero value is not usable; call Create or OpenAppend.
type Writer struct {
	path  string
	f     file
	hdr   Header
	buf   []byte // records appended since the last commit
	n     int    // how many
	last  int    // where the last of them starts in buf
	size  int64  // committed: the file's length after the last good Commit
	dirty bool   // bytes past size may be on file: cut them before writing
}

// Create makes a new journal at path with header h, synced, and returns a
// Writer for it. The file is written under a temporary name and renamed
// into place, so a crash leaves either no journal or a whole header. An
// existing file at path is an error.
func Create(path string, h Header) (*Writer, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("journal create %s: %w", path, os.ErrExist)
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal create: %w", err)
	}
	_, err = f.Write(appendHeader(nil, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = state.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("journal create %s: %w", path, err)
	}
	// Opened again under its own name, so that errors name it.
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("journal create: %w", err)
	}
	return &Writer{path: path, f: f, hdr: h, size: HeaderLen}, nil
}

// OpenAppend opens an existing journal for appending after reading it
// through. A journal with a torn tail or damage is refused with the
// *DamageError: cut it with Repair first (rtmd logs what a torn tail
// loses).
func OpenAppend(path string) (*Writer, error) {
	h, size, err := Check(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("journal open: %w", err)
	}
	return &Writer{path: path, f: f, hdr: h, size: size}, nil
}

// Header returns the journal's header.
func (w *Writer) Header() Header { return w.hdr }

// Append buffers p as a record for the next Commit; p is copied. It
// refuses an empty payload and one longer than MaxPayload.
func (w *Writer) Append(p []byte) error {
	if len(p) == 0 || len(p) > MaxPayload {
		return fmt.Errorf("journal append to %s: payload of %d bytes, want 1 to %d", w.path, len(p), MaxPayload)
	}
	// Every buffered record is flagged More; Commit clears the last
	// one's, so that a record's header is checksummed again once per
	// commit, not once per record.
	w.last = len(w.buf)
	w.buf = appendRecord(w.buf, p, true)
	w.n++
	return nil
}

// Reserve makes room for records of n payload bytes in all, so that
// appending a big turn copies each payload once.
func (w *Writer) Reserve(records, n int) {
	w.buf = slices.Grow(w.buf, records*RecordHeaderLen+n)
}

// keepBuf is the largest buffer a Writer keeps between commits: a big
// load's is handed back rather than held.
const keepBuf = 4 << 20

// Buffered returns the number of records and bytes appended since the last
// successful Commit.
func (w *Writer) Buffered() (records, bytes int) { return w.n, len(w.buf) }

// Size returns the journal's committed length: the file's size after the
// last successful Commit.
func (w *Writer) Size() int64 { return w.size }

// Commit writes every buffered record in one write at the committed end of
// the file and syncs it; when it returns nil they are durable. They form
// one commit: after a crash a Reader returns all of them or none. When the
// write or the sync fails (ENOSPC, EIO, EFBIG) the records stay buffered,
// nothing is acknowledged, and the file is cut back to its committed
// length, so that a later Commit never follows a half record; the error
// wraps the cause and says whether the cut succeeded. A cut that failed is
// tried again by the next Commit before it writes.
func (w *Writer) Commit() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.dirty {
		if err := w.f.Truncate(w.size); err != nil {
			return fmt.Errorf("journal commit %s: %s not written: cut back to %d bytes after an earlier failure: %w", w.path, records(w.n), w.size, err)
		}
		w.dirty = false
	}
	setMore(w.buf[w.last:], false)
	op := "write"
	_, err := w.f.WriteAt(w.buf, w.size)
	if err == nil {
		op = "fsync"
		err = w.f.Sync()
	}
	if err != nil {
		setMore(w.buf[w.last:], true) // a later Append may continue the commit
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		cut := fmt.Sprintf("cut back to %d bytes", w.size)
		if terr := w.f.Truncate(w.size); terr != nil {
			w.dirty = true
			cut = fmt.Sprintf("could not cut back to %d bytes (%v); the next commit tries again", w.size, terr)
		}
		return fmt.Errorf("journal commit %s: %s of %s (%d bytes) at offset %d: %w; nothing acknowledged, %s, the records stay buffered",
			w.path, op, records(w.n), len(w.buf), w.size, err, cut)
	}
	w.size += int64(len(w.buf))
	w.buf, w.n = w.buf[:0], 0
	if cap(w.buf) > keepBuf {
		w.buf = nil
	}
	return nil
}

// Discard drops the buffered records.
func (w *Writer) Discard() { w.buf, w.n = w.buf[:0], 0 }

// Close closes the file. Records not committed are dropped.
func (w *Writer) Close() error {
	w.Discard()
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("journal close %s: %w", w.path, err)
	}
	return nil
}

func records(n int) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
