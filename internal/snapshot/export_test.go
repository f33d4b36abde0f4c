package snapshot

import (
	"bytes"

	"github.com/rtm-project/rtm/internal/route"
)

// File is Write's file interface, for fault injection.
type File = file

// SetCreate replaces how Write creates its temporary file and returns a
// function that restores it.
func SetCreate(f func(name string) (File, error)) (restore func()) {
	old := createFile
	createFile = f
	return func() { createFile = old }
}

// ReadBytes reads a snapshot from memory and returns the size of the
// largest chunk buffer it allocated.
func ReadBytes(name string, b []byte, fn func(route.Route) error, mac func(MAC) error) (Header, int, error) {
	r := newReader(name, bytes.NewReader(b), int64(len(b)))
	h, err := r.read(fn, mac)
	return h, cap(r.buf), err
}

// Encoders, for tests that build files by hand.
var (
	AppendHeader      = appendHeader
	AppendChunkHeader = appendChunkHeader
)
