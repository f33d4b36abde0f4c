// Package snapshot writes and reads rtmd's snapshot file: both tables (the
// routes and the MAC entries) at one sequence number, which rtmd loads at
// start before it replays the journal after that number.
//
// # Format
//
// docs/state.md has the layout as offset tables. A snapshot is a 64-byte
// header (magic, format version, the state directory's history id, the
// sequence number, the route and MAC counts, a CRC-32C of the header), then
// chunks of
//
//	uint8 kind | 3 bytes zero | uint32 length | uint32 CRC-32C | payload
//
// little-endian: route chunks, whose payload is a Snapshot frame's payload
// of the wire package (a count and routes), then MAC chunks (a count and
// MAC entries: the slot, then the entry as a MAC request carries it), then one trailer chunk with
// the counts again. A route chunk is decoded by the same (fuzzed) decoder as
// the socket's Snapshot frames.
//
// # Damage
//
// A snapshot is written whole under a temporary name and renamed into place,
// so unlike the journal it has no torn tail: a file cut short, a flipped
// byte anywhere, or counts that disagree is an error naming the file and the
// offset, and the snapshot is not used.
//
// # Concurrency
//
// Write and Read may run on any goroutine; each call owns its file. Write
// reads the routes from the iterator it is given, which for rtmd is a
// frozen route.View, so the loop goes on while a snapshot is written.
package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"

	"github.com/rtm-project/rtm/internal/mac"
)

// Format constants. See docs/state.md.
const (
	// Magic is the first eight bytes of every snapshot.
	Magic = "RTMSNAP\x00"
	// Version is the format version this package writes and reads.
	Version = 1
	// HeaderLen is the size of the file header.
	HeaderLen = 64
	// ChunkHeaderLen is the size of a chunk's kind, length and checksum.
	ChunkHeaderLen = 12
	// MaxChunk bounds a chunk's payload, so that a damaged length cannot
	// make a reader allocate more. The writer's chunks are about 64 KiB.
	MaxChunk = 1 << 20
)

// Chunk kinds, in the order they appear.
const (
	kindRoutes  = 1
	kindMACs    = 2
	kindTrailer = 3
)

// trailerLen is the trailer chunk's payload: route count, MAC count, and
// the offset of the trailer chunk itself.
const trailerLen = 24

// chunkTarget is where the writer closes a MAC chunk; route chunks close
// where wire.RouteWriter says they are full, at about the same size.
const chunkTarget = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is what a snapshot says about the state it holds.
type Header struct {
	// History is the state directory's history id; a snapshot continues
	// only journals with the same id.
	History [16]byte
	// Seq is the sequence number of the last change the snapshot holds:
	// the journal is replayed from Seq+1.
	Seq uint64
}

// MAC is one entry of the MAC table.
type MAC struct {
	MAC  mac.Addr
	Slot uint32     // its slot in the shared-memory segment, which subscribers know
	IP   netip.Addr // valid, without a zone
	Dev  string     // the interface, or "" for none
}

// appendHeader appends the 64-byte header.
//
//	0  8  magic
//	8  4  format version
//	12 4  header length, 64
//	16 16 history id
//	32 8  sequence number
//	40 8  route count
//	48 8  MAC count
//	56 4  reserved, zero
//	60 4  CRC-32C of bytes 0-59
func appendHeader(b []byte, h Header, routes, macs uint64) []byte {
	start := len(b)
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint32(b, HeaderLen)
	b = append(b, h.History[:]...)
	b = binary.LittleEndian.AppendUint64(b, h.Seq)
	b = binary.LittleEndian.AppendUint64(b, routes)
	b = binary.LittleEndian.AppendUint64(b, macs)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// parseHeader decodes a header; the error names the field and its offset.
func parseHeader(b []byte) (h Header, routes, macs uint64, err error) {
	if len(b) < HeaderLen {
		return h, 0, 0, fmt.Errorf("the file ends at offset %d, inside the %d-byte header", len(b), HeaderLen)
	}
	b = b[:HeaderLen]
	if string(b[:8]) != Magic {
		return h, 0, 0, fmt.Errorf("magic %q at offset 0, want %q: not an rtm snapshot", b[:8], Magic)
	}
	if sum, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); sum != want {
		return h, 0, 0, fmt.Errorf("header checksum %#08x at offset 60, want %#08x", sum, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return h, 0, 0, fmt.Errorf("format version %d at offset 8, want %d", v, Version)
	}
	if n := binary.LittleEndian.Uint32(b[12:]); n != HeaderLen {
		return h, 0, 0, fmt.Errorf("header length %d at offset 12, want %d", n, HeaderLen)
	}
	if r := binary.LittleEndian.Uint32(b[56:]); r != 0 {
		return h, 0, 0, fmt.Errorf("reserved field %#x at offset 56, want 0", r)
	}
	copy(h.History[:], b[16:32])
	h.Seq = binary.LittleEndian.Uint64(b[32:])
	return h, binary.LittleEndian.Uint64(b[40:]), binary.LittleEndian.Uint64(b[48:]), nil
}

// appendChunkHeader appends a chunk header for payload p of the given kind.
//
//	0  1  kind: 1 routes, 2 MACs, 3 trailer
//	1  3  reserved, zero
//	4  4  payload length N
//	8  4  CRC-32C of bytes 0-7 and the payload
//	12 N  payload
func appendChunkHeader(b []byte, kind byte, p []byte) []byte {
	start := len(b)
	b = append(b, kind, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	sum := crc32.Update(crc32.Checksum(b[start:], castagnoli), castagnoli, p)
	return binary.LittleEndian.AppendUint32(b, sum)
}
