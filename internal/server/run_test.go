package server_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/rtm-project/rtm/internal/server"
)

// runServer starts rtmd in this process, with cfg, its socket in a
// temporary directory, no message queue and no log, and stops it when tb
// ends.
func runServer(tb testing.TB, cfg server.Config) *server.Server {
	tb.Helper()
	dir, err := os.MkdirTemp("", "rtmsv")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	cfg.Socket = filepath.Join(dir, "rtm.sock")
	cfg.MQ = "off"
	cfg.Log = slog.New(slog.DiscardHandler)
	s, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return s
}
