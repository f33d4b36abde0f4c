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
