package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps rtmd's imports in check: the standard library, x/sys,
// bart and rtm's own packages; nothing the bench or a client needs.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			continue // the standard library
		}
		ok := strings.HasPrefix(p, "github.com/rtm-project/rtm/") && !strings.Contains(p, "/bench") ||
			strings.HasPrefix(p, "golang.org/x/sys/") ||
			strings.HasPrefix(p, "github.com/gaissmai/bart")
		if !ok {
			t.Errorf("rtmd imports %s", p)
		}
	}
}
