package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/server"
)

// TestConsoleLongLine: a console line past the scanner's 1 MiB ends the
// console, and the operator is told why rather than left with a console
// that no longer answers.
func TestConsoleLongLine(t *testing.T) {
	dir, err := os.MkdirTemp("", "rtmcl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := server.New(server.Config{Socket: filepath.Join(dir, "rtm.sock"), MQ: "off", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	in := "route add " + strings.Repeat("x", 2<<20) + "\nstatus\n"
	var out bytes.Buffer
	s.Console(ctx, strings.NewReader(in), &out, false, func() {})
	if got := out.String(); !strings.Contains(got, "too long") {
		t.Errorf("console output after a 2 MiB line = %q, want it to say the line is too long", got[max(0, len(got)-200):])
	}
}
