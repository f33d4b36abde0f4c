package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// slowWriter takes d for every write, as a slow pager does.
type slowWriter struct{ d time.Duration }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.d)
	return len(p), nil
}

// TestRequestTimeoutOutput: time spent writing output does not count
// against --timeout, but the time between writes does: a server that
// trickles output for ever still times out.
func TestRequestTimeoutOutput(t *testing.T) {
	t.Run("trickle", func(t *testing.T) {
		e := &env{timeout: 200 * time.Millisecond}
		e.out.w = io.Discard
		ctx, done := e.request(context.Background(), 1)
		defer done()
		start := time.Now()
		for ctx.Err() == nil && time.Since(start) < 5*time.Second {
			e.out.Write([]byte("x")) // output arrives, and is written at once
			time.Sleep(10 * time.Millisecond)
		}
		if ctx.Err() == nil || !e.timedOut.Load() {
			t.Fatalf("a request trickling output for %v did not time out at 200ms", time.Since(start))
		}
	})
	t.Run("slow pager", func(t *testing.T) {
		e := &env{timeout: 200 * time.Millisecond}
		e.out.w = slowWriter{100 * time.Millisecond}
		ctx, done := e.request(context.Background(), 1)
		defer done()
		for range 5 { // 500ms blocked in writes
			e.out.Write([]byte("x"))
		}
		if ctx.Err() != nil {
			t.Fatal("time blocked writing output counted against the timeout")
		}
	})
}
