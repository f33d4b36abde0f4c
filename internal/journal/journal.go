// Package journal is rtmd's state journal: an append-only file of
// checksummed records behind a small header, written with group commit and
// read back after a crash.
//
// # Format
//
// docs/state.md has the layout as offset tables. A journal starts with a
// 48-byte header (magic, format version, the state directory's history id,
// the sequence number before the first record, and a CRC-32C of the header),
// then records of
//
//	uint32 length | uint32 CRC-32C (Castagnoli) of the payload |
//	uint32 CRC-32C of the record's bytes 0-7 | payload
//
// little-endian. The record header's own check lets a reader tell a damaged
// length from a write cut short. Payloads are opaque here; rtmd stores the wire package's
// Changes frames in them, so one decoder serves the socket and the journal.
// A payload is 1 to MaxPayload bytes.
//
// # Commits
//
// The records of one Commit are one unit: the top bit of the length field
// (More) is set on every record of a commit but its last, so a reader
// knows where a commit ends. The Reader returns whole commits only: a
// crash that left some of a commit's records whole and the rest torn
// loses the whole commit, never replays part of a loop turn. A journal
// written before the flag existed (the flag always clear) reads as
// commits of one record each.
//
// # Damage
//
// A crash in the middle of a write leaves a torn tail: the file ends inside
// a commit (inside a record's header, inside a payload whose header is
// valid, or after a record flagged More), or a record's header or payload
// fails its check and nothing, or nothing but zero bytes, follows it (a
// file system may grow the file before it writes the data). The Reader
// reports that as a *DamageError with Torn set, starting where the
// unfinished commit starts, which rtmd cuts off and logs. Damage anywhere
// else is a *DamageError without Torn, also at the start of its commit;
// rtmd refuses it unless asked to Repair.
//
// # Concurrency
//
// A Writer and a Reader each belong to one goroutine. Nothing here locks
// the file: rtmd holds its state directory's lock.
package journal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Format constants. See docs/state.md.
const (
	// Magic is the first eight bytes of every journal.
	Magic = "RTMJRNL\x00"
	// Version is the format version this package writes and reads.
	Version = 1
	// HeaderLen is the size of the file header.
	HeaderLen = 48
	// RecordHeaderLen is the size of a record's header: length, payload
	// checksum, and the checksum of those two.
	RecordHeaderLen = 12
	// MaxPayload bounds a record's payload, so that a damaged length
	// cannot make a reader allocate more.
	MaxPayload = 64 << 20
	// More is the flag in a record's length field that says more records
	// of the same commit follow it. The length is the field's other bits.
	More = 1 << 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is what a journal file says about itself.
type Header struct {
	// History is the state directory's history id: 16 random bytes made
	// when the directory is new. Two journals with different ids do not
	// continue each other.
	History [16]byte
	// Seq is the sequence number before the first record: the first
	// change in the journal has Seq+1.
	Seq uint64
}

// appendHeader appends h's 48 bytes to b.
//
//	0  8  magic
//	8  4  format version
//	12 4  header length, 48
//	16 16 history id
//	32 8  sequence number before the first record
//	40 4  reserved, zero
//	44 4  CRC-32C of bytes 0-43
func appendHeader(b []byte, h Header) []byte {
	start := len(b)
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint32(b, HeaderLen)
	b = append(b, h.History[:]...)
	b = binary.LittleEndian.AppendUint64(b, h.Seq)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// parseHeader decodes a header; the error says which field is wrong and
// its offset.
func parseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, fmt.Errorf("%d bytes, shorter than the %d-byte header", len(b), HeaderLen)
	}
	b = b[:HeaderLen]
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("magic %q at offset 0, want %q: not an rtm journal", b[:8], Magic)
	}
	if sum, want := binary.LittleEndian.Uint32(b[44:]), crc32.Checksum(b[:44], castagnoli); sum != want {
		return Header{}, fmt.Errorf("header checksum %#08x at offset 44, want %#08x", sum, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return Header{}, fmt.Errorf("format version %d at offset 8, want %d", v, Version)
	}
	if n := binary.LittleEndian.Uint32(b[12:]); n != HeaderLen {
		return Header{}, fmt.Errorf("header length %d at offset 12, want %d", n, HeaderLen)
	}
	if r := binary.LittleEndian.Uint32(b[40:]); r != 0 {
		return Header{}, fmt.Errorf("reserved field %#x at offset 40, want 0", r)
	}
	var h Header
	copy(h.History[:], b[16:32])
	h.Seq = binary.LittleEndian.Uint64(b[32:])
	return h, nil
}

// appendRecord appends p framed as a record to b; more flags it as not
// the last of its commit.
//
//	0  4  payload length N; bit 31 (More): the commit goes on
//	4  4  CRC-32C of the payload
//	8  4  CRC-32C of bytes 0-7
//	12 N  payload
func appendRecord(b, p []byte, more bool) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, lengthField(uint32(len(p)), more))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return append(b, p...)
}

// setMore sets or clears the More flag of the record that starts rec, and
// checksums its header again.
func setMore(rec []byte, more bool) {
	n := binary.LittleEndian.Uint32(rec) &^ More
	binary.LittleEndian.PutUint32(rec, lengthField(n, more))
	binary.LittleEndian.PutUint32(rec[8:], crc32.Checksum(rec[:8], castagnoli))
}

func lengthField(n uint32, more bool) uint32 {
	if more {
		return n | More
	}
	return n
}

// DamageError reports a journal that does not read to its end.
type DamageError struct {
	// Path names the file.
	Path string
	// Offset is where the commit with the damage starts: the end of the
	// last whole commit, the length the file keeps after a Repair.
	Offset int64
	// Size is the file's size; Size-Offset bytes are lost by cutting.
	Size int64
	// Torn reports a torn tail: what a crash in the middle of a write
	// leaves, safe to cut off because nothing after it was committed.
	Torn bool
	// Reason says what is wrong with the commit at Offset, and names the
	// record's offset when it is not the commit's first.
	Reason string
}

// Dropped returns how many bytes a Repair cuts off.
func (e *DamageError) Dropped() int64 { return e.Size - e.Offset }

// Error says what is wrong, with the file and the offset.
func (e *DamageError) Error() string {
	what := "damaged record"
	if e.Torn {
		what = "torn last record"
	}
	return fmt.Sprintf("journal %s: %s at offset %d: %s (%d bytes from there to the end)",
		e.Path, what, e.Offset, e.Reason, e.Dropped())
}
