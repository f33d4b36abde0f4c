package journal

import (
	"bytes"
)

// AppendHeader exposes the encoder to the tests.
var AppendHeader = appendHeader

// AppendRecord appends p as a commit of one record, as the writer before
// the More flag wrote every record.
func AppendRecord(b, p []byte) []byte { return appendRecord(b, p, false) }

// AppendCommit appends ps framed as one commit, as a Writer writes them:
// every record but the last flagged More.
func AppendCommit(b []byte, ps ...[]byte) []byte {
	for i, p := range ps {
		b = appendRecord(b, p, i < len(ps)-1)
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
