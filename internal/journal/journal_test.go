package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rtm-project/rtm/internal/journal"
)

var testHeader = journal.Header{
	History: [16]byte{0x52, 0x54, 0x4d, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
	Seq:     41,
}

// payloads returns n distinct payloads of varied lengths.
func payloads(n int) [][]byte {
	var ps [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte(i + 1)}, 1+(i*37)%200)
		p[0] = byte(i)
		ps = append(ps, p)
	}
	return ps
}

// writeJournal writes ps to a new journal, one commit per group of three
// (commitsOf), and returns its path and the offset at which each record
// starts.
func writeJournal(t *testing.T, ps [][]byte) (string, []int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal")
	w, err := journal.Create(path, testHeader)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := int64(journal.HeaderLen)
	for i, p := range ps {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
		off += journal.RecordHeaderLen + int64(len(p))
		if i%3 == 2 {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w.Size() != off {
		t.Fatalf("Size() = %d, want %d", w.Size(), off)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path, offs
}

// commitsOf splits ps into the commits writeJournal makes of them.
func commitsOf(ps [][]byte) [][][]byte {
	return slices.Collect(slices.Chunk(ps, 3))
}

// readAll reads the journal at path through and returns its commits and
// the error that ended it (nil at a clean end).
func readAll(t *testing.T, path string) ([][][]byte, *journal.Reader, error) {
	t.Helper()
	r, err := journal.Open(path)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { r.Close() })
	var got [][][]byte
	for {
		c, err := r.Next()
		if err == io.EOF {
			return got, r, nil
		}
		if err != nil {
			return got, r, err
		}
		var cc [][]byte
		for _, p := range c {
			cc = append(cc, bytes.Clone(p))
		}
		got = append(got, cc)
	}
}

func sameCommits(t *testing.T, got, want [][][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d commits, want %d", len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("commit %d has %d records, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if !bytes.Equal(got[i][j], want[i][j]) {
				t.Fatalf("commit %d record %d = %x, want %x", i, j, got[i][j], want[i][j])
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ps := payloads(10)
	path, _ := writeJournal(t, ps[:7])
	w, err := journal.OpenAppend(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Header() != testHeader {
		t.Fatalf("OpenAppend header = %+v, want %+v", w.Header(), testHeader)
	}
	for _, p := range ps[7:] {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	if n, b := w.Buffered(); n != 3 || b != 3*journal.RecordHeaderLen+len(ps[7])+len(ps[8])+len(ps[9]) {
		t.Fatalf("Buffered() = %d, %d", n, b)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", st.Mode().Perm())
	}
	got, r, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	sameCommits(t, got, append(commitsOf(ps[:7]), ps[7:]))
	if r.Header() != testHeader {
		t.Errorf("header = %+v, want %+v", r.Header(), testHeader)
	}
	if r.Offset() != st.Size() {
		t.Errorf("Offset() = %d at the end, want the file size %d", r.Offset(), st.Size())
	}
	if d, err := journal.Repair(path); d != nil || err != nil {
		t.Errorf("Repair(whole journal) = %v, %v; want nil, nil", d, err)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	path, _ := writeJournal(t, payloads(1))
	if _, err := journal.Create(path, testHeader); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over a journal: %v, want ErrExist", err)
	}
	if got, _, err := readAll(t, path); err != nil || len(got) != 1 {
		t.Fatalf("after a refused Create: %d records, %v", len(got), err)
	}
}

func TestAppendBounds(t *testing.T) {
	w, err := journal.Create(filepath.Join(t.TempDir(), "j"), testHeader)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, n := range []int{0, journal.MaxPayload + 1} {
		if err := w.Append(make([]byte, n)); err == nil || !strings.Contains(err.Error(), fmt.Sprint(n)) {
			t.Errorf("Append(%d bytes) = %v, want an error naming the length", n, err)
		}
	}
	if n, _ := w.Buffered(); n != 0 {
		t.Errorf("Buffered() = %d after refused appends", n)
	}
}

func TestBadHeader(t *testing.T) {
	good := journal.AppendHeader(nil, testHeader)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "0 bytes"},
		{"short", good[:47], "47 bytes"},
		{"magic", append([]byte("RTMJRNL\x01"), good[8:]...), "offset 0"},
		{"flipped history", flip(good, 20), "offset 44"},
		{"flipped checksum", flip(good, 45), "offset 44"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j")
			if err := os.WriteFile(path, tc.b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := journal.Open(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error naming %s and %q", err, path, tc.want)
			}
			if _, err := journal.Repair(path); err == nil {
				t.Fatal("Repair of a bad header succeeded")
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x40
	return b
}

// TestTornTail cuts a journal of commits of three records at every byte
// offset inside its last commit, flips every byte of the last payload, and
// writes zeros from offsets in the last commit: each reads as the commits
// before it and a torn tail at the last commit's start, never as a part of
// the last commit, which OpenAppend refuses and Repair cuts off.
func TestTornTail(t *testing.T) {
	ps := payloads(9)
	want := commitsOf(ps)[:2]
	path, offs := writeJournal(t, ps)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := offs[6]
	cuts := func(yield func(string, []byte) bool) {
		for cut := last + 1; cut < int64(len(whole)); cut++ {
			if !yield(fmt.Sprintf("cut at %d", cut), whole[:cut]) {
				return
			}
		}
		for i := offs[8] + journal.RecordHeaderLen; i < int64(len(whole)); i++ {
			if !yield(fmt.Sprintf("byte %d flipped", i), flip(whole, int(i))) {
				return
			}
		}
		for cut := last; cut < int64(len(whole)); cut += 7 {
			zeros := append(bytes.Clone(whole[:cut]), make([]byte, 4096)...)
			if !yield(fmt.Sprintf("zeros from %d", cut), zeros) {
				return
			}
		}
	}
	for name, b := range cuts {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, r, err := readAll(t, path)
		var d *journal.DamageError
		if !errors.As(err, &d) || !d.Torn || d.Offset != last || d.Dropped() != int64(len(b))-last {
			t.Fatalf("%s: read error %v, want a torn tail at offset %d dropping %d bytes", name, err, last, int64(len(b))-last)
		}
		sameCommits(t, got, want)
		if r.Offset() != last {
			t.Fatalf("%s: Offset() = %d, want %d", name, r.Offset(), last)
		}
		if _, err := journal.OpenAppend(path); !errors.As(err, &d) {
			t.Fatalf("%s: OpenAppend = %v, want the torn tail", name, err)
		}
		d, err = journal.Repair(path)
		if err != nil || d == nil || !d.Torn || d.Offset != last {
			t.Fatalf("%s: Repair = %v, %v", name, d, err)
		}
		got, _, err = readAll(t, path)
		if err != nil {
			t.Fatalf("%s: after Repair: %v", name, err)
		}
		sameCommits(t, got, want)
	}
}

// TestEndsAfterMore cuts the journal right after a record flagged More,
// each record of the last commit but its last: the file ends inside a
// commit, a torn tail, though every record in it is whole.
func TestEndsAfterMore(t *testing.T) {
	ps := payloads(9)
	path, offs := writeJournal(t, ps)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range offs[7:] {
		if err := os.WriteFile(path, whole[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, path)
		var d *journal.DamageError
		if !errors.As(err, &d) || !d.Torn || d.Offset != offs[6] || !strings.Contains(d.Reason, "the file ends inside a commit") {
			t.Fatalf("cut at %d: read error %v, want a torn tail at %d, the file ending inside a commit", cut, err, offs[6])
		}
		sameCommits(t, got, commitsOf(ps)[:2])
	}
}

// TestDamage flips every byte of a record in the middle of a commit in the
// middle, its header included: the reader refuses the journal with its
// name and the commit's offset, and Repair keeps the commits before it. A
// flipped byte in the last record's header is damage too, since its
// payload follows it.
func TestDamage(t *testing.T) {
	ps := payloads(9)
	path, offs := writeJournal(t, ps)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, rec := range []struct{ start, end int64 }{
		{offs[4], offs[5]},
		{offs[8], offs[8] + journal.RecordHeaderLen},
	} {
		start := offs[3+3*k]
		for i := rec.start; i < rec.end; i++ {
			b := flip(whole, int(i))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			got, _, err := readAll(t, path)
			var d *journal.DamageError
			if !errors.As(err, &d) || d.Torn || d.Offset != start {
				t.Fatalf("byte %d flipped: read error %v, want damage at offset %d", i, err, start)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("offset %d", start)) || !strings.Contains(msg, fmt.Sprintf("record at offset %d, inside the commit", rec.start)) {
				t.Fatalf("byte %d flipped: error %q does not name the file, the commit's offset %d and the record's %d", i, msg, start, rec.start)
			}
			kept := commitsOf(ps)[:1+k]
			sameCommits(t, got, kept)
			if _, err := journal.OpenAppend(path); !errors.As(err, &d) {
				t.Fatalf("byte %d flipped: OpenAppend = %v, want the damage", i, err)
			}
			d, err = journal.Repair(path)
			if err != nil || d == nil || d.Torn || d.Offset != start || d.Dropped() != int64(len(whole))-start {
				t.Fatalf("byte %d flipped: Repair = %v, %v; want the damage at %d, %d bytes dropped", i, d, err, start, int64(len(whole))-start)
			}
			got, _, err = readAll(t, path)
			if err != nil {
				t.Fatalf("byte %d flipped: after Repair: %v", i, err)
			}
			sameCommits(t, got, kept)
			w, err := journal.OpenAppend(path)
			if err != nil {
				t.Fatalf("byte %d flipped: OpenAppend after Repair: %v", i, err)
			}
			w.Close()
		}
	}
}

// TestMoreFlipped flips the More flag of each record of a commit in the
// middle: set on its last record (which would join the next commit to
// it) or clear on the others (which would split it), it is damage, caught
// by the record header's checksum, at the commit's start.
func TestMoreFlipped(t *testing.T) {
	ps := payloads(9)
	path, offs := writeJournal(t, ps)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range offs[3:6] {
		b := bytes.Clone(whole)
		b[off+3] ^= 0x80
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, path)
		var d *journal.DamageError
		if !errors.As(err, &d) || d.Torn || d.Offset != offs[3] || !strings.Contains(d.Reason, "record header checksum") {
			t.Fatalf("More flipped at %d: read error %v, want damage at %d (record header checksum)", off, err, offs[3])
		}
		sameCommits(t, got, commitsOf(ps)[:1])
	}
}

// TestOldWriter reads a journal written by the writer from before the
// More flag (commits of 3, 1 and 2 records, the flag always clear): each
// record reads as a commit of its own, as that writer's reader read them.
func TestOldWriter(t *testing.T) {
	path := filepath.Join("testdata", "old-writer.journal")
	got, r, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	var want [][][]byte
	for i, n := range []int{3, 1, 2} {
		for j := range n {
			want = append(want, [][]byte{fmt.Appendf(nil, "commit %d record %d", i, j)})
		}
	}
	sameCommits(t, got, want)
	if r.Header() != testHeader {
		t.Errorf("header = %+v, want %+v", r.Header(), testHeader)
	}
	if st, err := os.Stat(path); err != nil || r.Offset() != st.Size() {
		t.Errorf("Offset() = %d at the end of a %d-byte file (%v)", r.Offset(), st.Size(), err)
	}
}

// TestDamagedLengthRefused damages length fields so that the record runs
// past the end of the file, which a format without a check of the record
// header would read as a torn tail and cut silently: the record header's
// checksum tells it from a write cut short. A valid record header with a
// length no writer writes is damage too, whether or not it is flagged
// More.
func TestDamagedLengthRefused(t *testing.T) {
	ps := payloads(9)
	path, offs := writeJournal(t, ps)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// rehead gives the record at off the length field n and a header
	// checksum that matches.
	rehead := func(b []byte, off int64, n uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], n)
		binary.LittleEndian.PutUint32(b[off+8:], crc32.Checksum(b[off:off+8], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		at     int64
		reason string
	}{
		{"middle record runs past the end", func() []byte { b := bytes.Clone(whole); b[offs[4]+2] = 1; return b }(), offs[3], "record header checksum"},
		{"last record runs past the end", func() []byte { b := bytes.Clone(whole); b[offs[8]+1] ^= 1; return b }(), offs[6], "record header checksum"},
		{"valid header, length 0", rehead(whole, offs[3], 0), offs[3], "length 0"},
		{"valid header, More, length 0", rehead(whole, offs[4], journal.More), offs[3], "length 0"},
		{"valid header, length over the limit", rehead(whole, offs[3], journal.MaxPayload+1), offs[3], "more than the"},
		{"valid header, More, length over the limit", rehead(whole, offs[4], journal.More|journal.MaxPayload+1), offs[3], "more than the"},
		{"valid header, More, bit 30 set", rehead(whole, offs[4], journal.More|1<<30|uint32(len(ps[4]))), offs[3], "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err = readAll(t, path)
			var d *journal.DamageError
			if !errors.As(err, &d) || d.Torn || d.Offset != tc.at || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("read error %v, want damage at %d (%q)", err, tc.at, tc.reason)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("damaged record at offset %d", tc.at)) {
				t.Fatalf("error %q does not name the file and offset %d", msg, tc.at)
			}
			if _, err := journal.OpenAppend(path); !errors.As(err, &d) || d.Torn {
				t.Fatalf("OpenAppend = %v, want the damage", err)
			}
		})
	}
}

// faultFile fails the write or the sync it is told to, after writing part
// of the bytes, as a full disk does.
type faultFile struct {
	journal.File
	failWrite, failSync, failTruncate error
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.failWrite != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, f.failWrite
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.failSync != nil {
		return f.failSync
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(n int64) error {
	if f.failTruncate != nil {
		return f.failTruncate
	}
	return f.File.Truncate(n)
}

// TestCommitFailure fails a commit's write or sync: the file is cut back to
// what was committed, nothing is acknowledged, and a retry once the fault
// is gone, with one more record appended, leaves a whole journal with
// every record, the failed commit's and the new one in one commit.
func TestCommitFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault faultFile
		cause error
		want  string
	}{
		{"write ENOSPC", faultFile{failWrite: syscall.ENOSPC}, syscall.ENOSPC, "write of 2 records"},
		{"fsync EIO", faultFile{failSync: syscall.EIO}, syscall.EIO, "fsync of 2 records"},
		{"write and cut fail", faultFile{failWrite: syscall.ENOSPC, failTruncate: syscall.EIO}, syscall.ENOSPC, "could not cut back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := payloads(6)
			path, _ := writeJournal(t, ps[:3])
			w, err := journal.OpenAppend(path)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			committed := w.Size()
			fault := tc.fault
			fault.File = w.SetFile(&fault)
			for _, p := range ps[3:5] {
				w.Append(p)
			}
			err = w.Commit()
			if !errors.Is(err, tc.cause) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Commit = %v, want %v and %q", err, tc.cause, tc.want)
			}
			if w.Size() != committed {
				t.Fatalf("Size() = %d after a failed commit, want %d", w.Size(), committed)
			}
			if n, _ := w.Buffered(); n != 2 {
				t.Fatalf("Buffered() = %d after a failed commit, want 2", n)
			}
			st, _ := os.Stat(path)
			if tc.fault.failTruncate == nil && st.Size() != committed {
				t.Fatalf("file is %d bytes after a failed commit, want it cut back to %d", st.Size(), committed)
			}
			if tc.fault.failTruncate != nil {
				// The half record is still there; the next commit must cut
				// it before writing, or fail.
				fault.failWrite = nil
				if err := w.Commit(); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "cut back") {
					t.Fatalf("Commit with the cut still failing = %v", err)
				}
			}
			fault.failWrite, fault.failSync, fault.failTruncate = nil, nil, nil
			w.Append(ps[5])
			if err := w.Commit(); err != nil {
				t.Fatalf("Commit after the fault: %v", err)
			}
			got, r, err := readAll(t, path)
			if err != nil {
				t.Fatal(err)
			}
			sameCommits(t, got, commitsOf(ps))
			if r.Offset() != w.Size() {
				t.Fatalf("journal ends at %d, Size() = %d", r.Offset(), w.Size())
			}
		})
	}
}
