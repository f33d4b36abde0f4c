package mac_test

import (
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
)

func TestParse(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "02:00:5e:10:00:01", want: "02:00:5e:10:00:01"},
		{in: "AA:bb:CC:dd:EE:ff", want: "aa:bb:cc:dd:ee:ff"},
		{in: "", err: "invalid mac"},
		{in: "02:00:5e:10:00", err: "invalid mac"},
		{in: "02-00-5e-10-00-01", err: "invalid mac"},
		{in: "02:00:5e:10:00:0g", err: "invalid mac"},
		{in: "02:00:5e:10:00:01:", err: "invalid mac"},
	}
	for _, tt := range tests {
		a, err := mac.Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %v, %v; want error %q", tt.in, a, err, tt.err)
			}
			continue
		}
		if err != nil || a.String() != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("02:00:5e:10:00:01")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := mac.Parse(s)
		if err != nil {
			return
		}
		if b, err := mac.Parse(a.String()); err != nil || b != a {
			t.Fatalf("Parse(%q) = %v; round trip %v, %v", s, a, b, err)
		}
	})
}
