package route_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the result, or "" for an error
		err  string // substring of the error
	}{
		{in: "10.0.0.0/24 via 10.1.1.1 dev eth0", want: "10.0.0.0/24 via 10.1.1.1 dev eth0"},
		{in: "10.0.0.7/24 via 10.1.1.1 dev eth0", want: "10.0.0.0/24 via 10.1.1.1 dev eth0"},
		{in: "10.0.0.7 via 10.1.1.1 dev eth0", want: "10.0.0.7/32 via 10.1.1.1 dev eth0"},
		{in: "  10.0.0.0/8   dev e0 via 1.2.3.4 ", want: "10.0.0.0/8 via 1.2.3.4 dev e0"},
		{in: "0.0.0.0/0 via 1.1.1.1 dev lo", want: "0.0.0.0/0 via 1.1.1.1 dev lo"},
		{in: "2001:DB8::1/32 via fe80::1 dev eth1", want: "2001:db8::/32 via fe80::1 dev eth1"},
		{in: "::/0 via ::1 dev x", want: "::/0 via ::1 dev x"},
		{in: "", err: "missing dst"},
		{in: "10.0.0.0/33 via 1.1.1.1 dev e", err: `invalid dst "10.0.0.0/33"`},
		{in: "10.0.0.0/-1 via 1.1.1.1 dev e", err: `invalid dst`},
		{in: "300.0.0.0/8 via 1.1.1.1 dev e", err: `invalid dst`},
		{in: "::/129 via ::1 dev e", err: `invalid dst "::/129"`},
		{in: "::ffff:10.0.0.0/104 via ::1 dev e", err: "IPv4-mapped"},
		{in: "fe80::%eth0/64 via ::1 dev e", err: "invalid dst"},
		{in: "10.0.0.0/8 via 1.1.1 dev e", err: `invalid gateway "1.1.1"`},
		{in: "10.0.0.0/8 via ::1 dev e", err: `invalid gateway "::1": not the family`},
		{in: "::/0 via 1.1.1.1 dev e", err: `invalid gateway "1.1.1.1": not the family`},
		{in: "::/0 via fe80::1%eth0 dev e", err: `invalid gateway "fe80::1%eth0": zones`},
		{in: "10.0.0.0/8 via 1.1.1.1 dev " + strings.Repeat("x", 32), err: "invalid dev"},
		{in: "10.0.0.0/8 via 1.1.1.1 dev e\x01", err: "not printable"},
		{in: "10.0.0.0/8 via 1.1.1.1 dev é", err: "not printable"},
		{in: "10.0.0.0/8 via 1.1.1.1", err: `missing "dev OIF"`},
		{in: "10.0.0.0/8 dev e", err: `missing "via GATEWAY"`},
		{in: "10.0.0.0/8 via 1.1.1.1 dev", err: `"dev" needs a value`},
		{in: "10.0.0.0/8 via 1.1.1.1 via 1.1.1.2 dev e", err: "given twice"},
		{in: "10.0.0.0/8 via 1.1.1.1 dev e metric 5", err: `unknown keyword "metric"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := route.ParseLine(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseLine(%q) = %v, %v; want error containing %q", tt.in, r, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("ParseLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err := r.Validate(); err != nil {
				t.Errorf("Validate(%v) = %v", r, err)
			}
		})
	}
}

func TestFieldErrorNamesField(t *testing.T) {
	_, err := route.ParseLine("10.0.0.0/8 via 1.1.1.1 dev " + strings.Repeat("y", 40))
	var fe *route.FieldError
	if !errors.As(err, &fe) || fe.Field != "dev" {
		t.Fatalf("error %v is not a FieldError for dev", err)
	}
}

func TestValidate(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name string
		r    route.Route
	}{
		{"zero", route.Route{}},
		{"host bits", route.Route{Dst: netip.MustParsePrefix("10.0.0.1/8"), NextHop: route.NextHop{Gateway: gw, Dev: "e"}}},
		{"no gateway", route.Route{Dst: netip.MustParsePrefix("10.0.0.0/8"), NextHop: route.NextHop{Dev: "e"}}},
		{"family", route.Route{Dst: netip.MustParsePrefix("::/0"), NextHop: route.NextHop{Gateway: gw, Dev: "e"}}},
		{"dev", route.Route{Dst: netip.MustParsePrefix("10.0.0.0/8"), NextHop: route.NextHop{Gateway: gw, Dev: "a b"}}},
	}
	for _, tt := range tests {
		if err := tt.r.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) = nil, want an error", tt.name, tt.r)
		}
	}
}
