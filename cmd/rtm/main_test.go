package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/command"
)

// TestHelp checks that rtm --help has the grammar and every global flag
// that docs/cli.md lists.
func TestHelp(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, w := range []string{"--socket", "--timeout", "--trust-uid", "--connect", "--via", "--mq", "--json",
		"--oneline", "-4, -6", "--batch FILE", "--force", "flush never is"} {
		if !strings.Contains(help, w) {
			t.Errorf("rtm --help lacks %q", w)
		}
	}
	for _, l := range strings.Split(command.Usage, "\n") {
		if !strings.Contains(help, l) {
			t.Errorf("rtm --help lacks the grammar's line %q", l)
		}
	}
	for v := command.RouteAdd; v <= command.RouteFlush; v++ {
		if !strings.Contains(help, "\n  "+v.String()) {
			t.Errorf("rtm --help lacks %q", v)
		}
	}
}

// TestUsageErrors checks mistakes that rtm refuses before it dials rtmd.
func TestUsageErrors(t *testing.T) {
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte("# first\n\nroute add 10.0.0.0/8 frob\n"), 0o644)
	t.Setenv("RTM_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	tests := []struct {
		args  string
		usage bool
		err   string
	}{
		{"flush", true, `spell it "flush all"`},
		{"f all", true, "flush is never abbreviated"},
		{"route fl table all", true, "flush is never abbreviated"},
		{"--force route show", true, "--force goes with --batch"},
		{"-batch " + batch + " route show", true, `unexpected command "route"`},
		{"-batch", true, "needs a value"},
		{"-batch " + batch, false, `line 3: route add: invalid keyword "frob"`},
		{"-batch " + batch + " -force", false, "1 of 1 commands failed"},
		{"-6 route add 10.0.0.0/8 dev eth0", true, "10.0.0.0/8"},
	}
	for _, tt := range tests {
		var out strings.Builder
		err := run(context.Background(), strings.Fields(tt.args), strings.NewReader(""), &out)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tt.err) || errors.As(err, &ue) != tt.usage {
			t.Errorf("rtm %s: %v (usage error: %v); want an error containing %q (usage error: %v)",
				tt.args, err, errors.As(err, &ue), tt.err, tt.usage)
		}
	}
}
