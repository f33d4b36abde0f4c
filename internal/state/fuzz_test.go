package state

import (
	"strings"
	"testing"
)

// FuzzRuns: whatever a runs file holds, parseRuns returns at most MaxRuns
// runs, the first ending at the sequence number given, or an error naming
// the line; it never panics.
func FuzzRuns(f *testing.F) {
	f.Add([]byte("00000000000000000000000000000000\n"))
	f.Add([]byte("0123456789abcdef0123456789abcdef\nfedcba9876543210fedcba9876543210 000000000000002a\n"))
	f.Add([]byte("zz\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		runs, err := parseRuns(b, 42)
		switch {
		case err != nil && !strings.HasPrefix(err.Error(), "line "):
			t.Errorf("error not naming the line: %v", err)
		case err == nil && len(runs) > MaxRuns:
			t.Errorf("%d runs, at most %d", len(runs), MaxRuns)
		case err == nil && len(runs) > 0 && runs[0].End != 42:
			t.Errorf("the last run ends at %d, want 42", runs[0].End)
		}
	})
}
