package compat_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/route"
)

// TestGolden pins the record, byte for byte.
func TestGolden(t *testing.T) {
	r, _ := route.ParseLine("10.20.30.0/24 via 192.168.100.254 dev eth0")
	got, err := compat.Append(nil, compat.Update, r)
	if err != nil {
		t.Fatal(err)
	}
	want := "01000000" + // op UPDATE
		"31302e32302e33302e300000000000000"[:32] + // "10.20.30.0" padded to 16
		"1800" + // mask 24
		"3139322e3136382e3130302e323534000000"[:32] + // "192.168.100.254" padded to 16
		"65746830" + strings.Repeat("00", 28) + // "eth0" padded to 32
		"0000" // padding
	if h := hex.EncodeToString(got); h != want {
		t.Errorf("record\n got %s\nwant %s", h, want)
	}
	if len(got) != compat.Size {
		t.Errorf("%d bytes", len(got))
	}
	back, err := compat.Decode(got)
	if err != nil || back.Op != compat.Update || back.Route != r {
		t.Errorf("Decode = %+v, %v", back, err)
	}
	max, _ := route.ParseLine("255.255.255.255/32 via 255.255.255.254 dev " + strings.Repeat("x", 31))
	rec, err := compat.Append(nil, compat.Create, max)
	if err != nil || rec[19] != 0 || rec[37] != 0 || rec[69] != 0 {
		t.Errorf("the longest fields: %x, %v", rec, err)
	}
}

func TestNoForm(t *testing.T) {
	r, _ := route.ParseLine("2001:db8::/32 via ::1 dev eth0")
	if _, err := compat.Append(nil, compat.Create, r); !errors.Is(err, compat.ErrNoForm) {
		t.Errorf("IPv6 route: %v", err)
	}
	long := route.Route{Dst: r.Dst, NextHop: route.NextHop{Dev: strings.Repeat("y", 32)}}
	long.Dst, _ = route.ParsePrefix("10.0.0.0/8")
	if _, err := compat.Append(nil, compat.Create, long); !errors.Is(err, compat.ErrNoForm) {
		t.Errorf("a 32-byte name: %v", err)
	}
}

// FuzzDecode checks that the record decoder never panics and that what it
// accepts encodes back to a record it reads the same.
func FuzzDecode(f *testing.F) {
	r, _ := route.ParseLine("10.0.0.0/8 via 10.1.1.1 dev eth0")
	rec, _ := compat.Append(nil, compat.Create, r)
	f.Add(rec)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := compat.Decode(b)
		if err != nil || got.Route.Validate() != nil {
			return
		}
		again, err := compat.Append(nil, got.Op, got.Route)
		if err != nil {
			t.Fatalf("Append(%+v): %v", got, err)
		}
		if back, err := compat.Decode(again); err != nil || back != got {
			t.Fatalf("round trip %+v -> %+v, %v", got, back, err)
		}
	})
}
