package server_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/server"
)

// TestConsoleLongLine: a console line past the scanner's 1 MiB ends the
// console, and the operator is told why rather than left with a console
// that no longer answers.
func TestConsoleLongLine(t *testing.T) {
	s := runServer(t, server.Config{})
	ctx := context.Background()
	in := "route add " + strings.Repeat("x", 2<<20) + "\nstatus\n"
	var out bytes.Buffer
	s.Console(ctx, strings.NewReader(in), &out, false, func() {})
	if got := out.String(); !strings.Contains(got, "too long") {
		t.Errorf("console output after a 2 MiB line = %q, want it to say the line is too long", got[max(0, len(got)-200):])
	}
}
