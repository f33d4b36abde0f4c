package journal

import (
	"bytes"
)

// AppendHeader and AppendRecord expose the encoders to the tests.
var (
	AppendHeader = appendHeader
	AppendRecord = appendRecord
)

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
