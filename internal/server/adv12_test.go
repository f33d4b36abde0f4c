package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/server"
)

// TestAdvRunClosesHelloPending: Run closes every connection before it
// returns, also a ghk84 client that has connected and not yet sent its pid
// (rtmd waits 10 s for it). Left open, its goroutine outlives Run, and if
// its pid comes after the loop stopped, it may be handed to the stopped
// loop (the events channel is buffered) and never closed at all.
func TestAdvRunClosesHelloPending(t *testing.T) {
	dir, err := os.MkdirTemp("", "rtmsv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "ghk.sock")
	s, err := server.New(server.Config{Socket: filepath.Join(dir, "rtm.sock"), MQ: "off", Log: slog.New(slog.DiscardHandler),
		Compat: []server.CompatSocket{{Path: sock, Layout: compat.GHK84}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var nc net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if nc, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	defer nc.Close()
	time.Sleep(50 * time.Millisecond) // accepted; waiting for the pid
	cancel()
	<-done
	nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, compat.GHK84.Size)
	for {
		_, err := io.ReadFull(nc, b)
		if err == nil {
			continue // a loop-0 record is welcome
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("3 s after Run returned, a ghk84 connection that had not sent its pid is still open")
		}
		break
	}
}
