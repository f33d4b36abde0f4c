package journal

import (
	"bytes"
)

// AppendHeader and AppendRecord expose the encoders to the tests.
var (
	AppendHeader = appendHeader
	AppendRecord = appendRecord
)

// AppendCommit appends ps framed as one commit, as a Writer writes them:
// every record but the last flagged More.
func AppendCommit(b []byte, ps ...[]byte) []byte {
	last := -1
	for _, p := range ps {
		if last >= 0 {
			setMore(b[last:])
		}
		last = len(b)
		b = appendRecord(b, p)
	}
	return b
}

// File is the writer's file interface, for fault injection.
type File = file

// NewReaderBytes reads a journal from memory.
func NewReaderBytes(name string, b []byte) (*Reader, error) {
	return newReader(name, bytes.NewReader(b), int64(len(b)))
}

// SetFile replaces the writer's file, returning the old one.
func (w *Writer) SetFile(f File) File {
	old := w.f
	w.f = f
	return old
}

// BufCap is the capacity of the reader's payload buffer.
func (r *Reader) BufCap() int { return cap(r.buf) }
