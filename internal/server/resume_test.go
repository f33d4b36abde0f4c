package server

import (
	"testing"

	"github.com/rtm-project/rtm/internal/wire"
)

// TestWindowSince: the window resumes only subscribers whose sequence
// number it holds every change after: after a restart from a snapshot at
// 100 it holds none before 101, even while it is empty.
func TestWindowSince(t *testing.T) {
	w := window{max: 1 << 20, from: 100}
	if _, ok := w.since(50); ok {
		t.Error("an empty window from 100 resumes a subscriber at 50")
	}
	if bufs, ok := w.since(100); !ok || len(bufs) != 0 {
		t.Errorf("an empty window from 100, a subscriber at 100: %d frames, %v; want none, true", len(bufs), ok)
	}
	var cw wire.ChangeWriter
	cw.AddFlush(101)
	cw.AddFlush(102)
	w.add(101, 102, cw.Take())
	if _, ok := w.since(99); ok {
		t.Error("a window from 100 resumes a subscriber at 99")
	}
	if bufs, ok := w.since(101); !ok || len(bufs) != 1 {
		t.Errorf("a subscriber at 101: %d frames, %v; want 1, true", len(bufs), ok)
	}
	w.max = 1 // the next turn pushes the first out
	cw.AddFlush(103)
	w.add(103, 103, cw.Take())
	if _, ok := w.since(101); ok || w.from != 102 {
		t.Errorf("after the window dropped 101-102: from %d, resumes 101 %v", w.from, ok)
	}
}

// TestWindowPacks: one-change turns are copied side by side into the
// window's chunks, so that a subscriber that resumes from the start gets
// a few buffers, not one per turn, and the window counts bytes it holds;
// one that resumes inside a frame gets the rest of that frame alone
// re-encoded.
func TestWindowPacks(t *testing.T) {
	w := window{max: 1 << 20}
	var cw wire.ChangeWriter
	const turns = 10000
	for seq := uint64(1); seq <= turns; seq++ {
		cw.AddFlush(seq)
		w.add(seq, seq, cw.Take())
	}
	var frames int
	for _, f := range w.frames {
		frames += len(f.b)
	}
	if w.size != frames {
		t.Errorf("window counts %d bytes, holds frames of %d", w.size, frames)
	}
	bufs, ok := w.since(0)
	if !ok || len(bufs) > 2 {
		t.Fatalf("resume after 0 of %d one-change turns: %d buffers, %v; want at most 2", turns, len(bufs), ok)
	}
	if got := seqs(t, bufs); len(got) != turns || got[0] != 1 || got[turns-1] != turns {
		t.Errorf("resume after 0: %d changes (%v...)", len(got), got[:min(3, len(got))])
	}

	var big wire.ChangeWriter
	for seq := uint64(turns + 1); seq <= turns+5000; seq++ {
		big.AddFlush(seq)
	}
	w.add(turns+1, turns+5000, big.Take())
	bufs, _ = w.since(turns + 2)
	if got := seqs(t, bufs); len(got) != 4998 || got[0] != turns+3 {
		t.Errorf("resume inside a turn, after %d: %d changes from %d", turns+2, len(got), got[0])
	}
}

func seqs(t *testing.T, bufs [][]byte) []uint64 {
	t.Helper()
	var out []uint64
	var d wire.Decoder
	for _, b := range bufs {
		for {
			typ, p, rest, ok := wire.NextFrame(b)
			if !ok {
				break
			}
			b = rest
			if typ != wire.TChanges {
				t.Fatalf("frame type %d among changes", typ)
			}
			if err := d.Changes(p, func(c wire.Change) { out = append(out, c.Seq) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i < len(out); i++ {
		if out[i] != out[i-1]+1 {
			t.Fatalf("change %d follows %d", out[i], out[i-1])
		}
	}
	return out
}
