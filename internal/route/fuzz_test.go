package route_test

import (
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// FuzzParseLine checks that a parsed route is valid and that its text form
// parses back to the same route.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24 via 10.1.1.1 dev eth0", "2001:db8::1 dev x via ::1", "::ffff:1.2.3.4/128 via ::1 dev e", "1.2.3.4/33 via 1.1.1.1 dev e"} {
		f.Add(s)
	}
	for _, s := range []string{"10.0.0.0/8 via 1.2.3.4 dev e", "010.0.0.0/8 via 1.2.3.4 dev e", "1.2.3.4/032 via 1.2.3.4 dev e", "1.2.3.256/8 via 1.2.3.4 dev e", "1.2.3.4/8 via 1.2.3.4 dev e f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := route.ParseLine(s)
		slow, slowErr := route.ParseLineSlow(s)
		if (err == nil) != (slowErr == nil) || r != slow {
			t.Fatalf("ParseLine(%q) = %v, %v; the general parser says %v, %v", s, r, err, slow, slowErr)
		}
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseLine(%q) = %v, which is invalid: %v", s, r, err)
		}
		r2, err := route.ParseLine(r.String())
		if err != nil || r2 != r {
			t.Fatalf("ParseLine(%q) = %v, %v; want %v", r.String(), r2, err, r)
		}
	})
}
