package route_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// FuzzParseLine checks that parsing never panics, that the fast path and
// the general parser (ParseFields) agree, and that whatever parses prints
// (AppendText, AppendLine) and parses back to the same route, and prints
// as valid JSON.
func FuzzParseLine(f *testing.F) {
	for _, tt := range textCases {
		f.Add(tt.in, 0)
	}
	for _, s := range []string{
		"10.0.0.0/8 via 192.0.2.1 dev eth0 proto static metric 5",
		"10.0.0.1/8 via 192.0.2.1 dev eth0",
		"default via fe80::1 dev eth0",
		"unreachable ::/0",
		"::/0 dev wg0 src 10.0.0.1",
		"default nexthop via inet6 fe80::1 dev a nexthop via inet6 fe80::2 dev b weight 9",
		"local 10.0.0.1 dev lo",
		"10.0.0.0/8 dev a mtu lock 1400 scope link",
	} {
		f.Add(s, 0)
		f.Add(s, 6)
	}
	f.Fuzz(func(t *testing.T, line string, fam int) {
		opt := route.ParseOptions{Family: []int{0, 4, 6}[uint(fam)%3]}
		var r route.Route
		ign, err := opt.ParseLineInto(&r, line)
		r2, ign2, err2 := opt.ParseFields(asciiFields(line))
		if (err == nil) != (err2 == nil) || err == nil && (!r.Equal(&r2) || ign != ign2) {
			t.Fatalf("%+v.ParseLineInto(%q) = %v, %d, %v; ParseFields = %v, %d, %v", opt, line, r, ign, err, r2, ign2, err2)
		}
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseLine(%q) = %v, which fails Validate: %v", line, r, err)
		}
		want := reread(r)
		for _, s := range []string{r.String(), string(r.AppendLine(nil))} {
			got, ign, err := opt.ParseLine(s)
			if err != nil || ign != 0 || !got.Equal(&want) {
				t.Fatalf("%+v.ParseLine(%q) = %v, %d, %v; want %v (from %q)", opt, s, got, ign, err, want, line)
			}
		}
		if b := r.AppendJSON(nil); !json.Valid(b) {
			t.Fatalf("AppendJSON(%v) = %s, not valid JSON", r, b)
		}
	})
}

// asciiFields splits s at ASCII white space, as ParseLine does
// (strings.Fields splits at Unicode white space too).
func asciiFields(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
	})
}
