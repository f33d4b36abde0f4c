package journal_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/journal"
)

// seedJournal returns a journal of ps, one record a commit, as the writer
// before the More flag wrote them.
func seedJournal(ps ...[]byte) []byte {
	b := journal.AppendHeader(nil, testHeader)
	for _, p := range ps {
		b = journal.AppendRecord(b, p)
	}
	return b
}

// seedCommits returns a journal of commits.
func seedCommits(cs ...[][]byte) []byte {
	b := journal.AppendHeader(nil, testHeader)
	for _, c := range cs {
		b = journal.AppendCommit(b, c...)
	}
	return b
}

// FuzzReader checks that the reader never panics, never allocates more
// than the file holds, returns only non-empty commits, ends at io.EOF only
// at the end of the file and otherwise with a *DamageError naming the file
// and offset, and that what it accepts encodes back to the same bytes,
// commit by commit.
func FuzzReader(f *testing.F) {
	whole := seedJournal(payloads(4)...)
	f.Add(whole)
	// Commits of three, one and two records, whole, cut inside the last
	// commit, cut right after a record flagged More, and with a More flag
	// flipped in the middle.
	ps := payloads(6)
	commits := seedCommits(ps[:3], ps[3:4], ps[4:])
	f.Add(commits)
	f.Add(commits[:len(commits)-5])
	f.Add(commits[:len(commits)-journal.RecordHeaderLen-len(ps[5])])
	more := bytes.Clone(commits)
	more[journal.HeaderLen+3] ^= 0x80
	f.Add(more)
	f.Add(whole[:len(whole)-3])
	f.Add(flip(whole, journal.HeaderLen+10))
	f.Add(append(bytes.Clone(whole), make([]byte, 100)...))
	f.Add(seedJournal())
	f.Add(seedJournal([]byte{0}, bytes.Repeat([]byte{0xff}, 300)))
	// A length damaged to run past the end: the record header's checksum
	// makes it damage, not a torn tail.
	long := bytes.Clone(whole)
	long[journal.HeaderLen+2] = 1
	f.Add(long)
	// A record header of zeros, then zeros: a torn tail.
	f.Add(append(seedJournal(payloads(1)...), make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := journal.NewReaderBytes("fuzz", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "journal fuzz: bad header") {
				t.Fatalf("header error %q does not name the file", err)
			}
			return
		}
		re := journal.AppendHeader(nil, r.Header())
		for {
			c, err := r.Next()
			if err == io.EOF {
				if r.Offset() != int64(len(b)) {
					t.Fatalf("io.EOF at offset %d of %d", r.Offset(), len(b))
				}
				break
			}
			if err != nil {
				var d *journal.DamageError
				if !errors.As(err, &d) {
					t.Fatalf("Next = %v, want a *DamageError", err)
				}
				if d.Offset != r.Offset() || d.Size != int64(len(b)) || d.Offset >= d.Size {
					t.Fatalf("damage at %d of %d, reader at %d", d.Offset, d.Size, r.Offset())
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("journal fuzz: %s at offset %d", map[bool]string{true: "torn last record", false: "damaged record"}[d.Torn], d.Offset)) {
					t.Fatalf("error %q does not name the file and offset", err)
				}
				if _, again := r.Next(); again != err {
					t.Fatalf("Next after %v = %v", err, again)
				}
				break
			}
			if len(c) == 0 {
				t.Fatalf("a commit of no records at offset %d", r.Offset())
			}
			for _, p := range c {
				if len(p) == 0 || len(p) > journal.MaxPayload {
					t.Fatalf("payload of %d bytes", len(p))
				}
			}
			re = journal.AppendCommit(re, c...)
			if !bytes.Equal(re, b[:r.Offset()]) {
				t.Fatalf("re-encoded %x, want %x", re, b[:r.Offset()])
			}
		}
		if r.BufCap() > len(b) {
			t.Fatalf("reader buffer of %d bytes for a %d-byte file", r.BufCap(), len(b))
		}
		if !bytes.Equal(re, b[:r.Offset()]) {
			t.Fatalf("re-encoded %x, want %x", re, b[:r.Offset()])
		}
	})
}
