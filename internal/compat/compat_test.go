package compat_test

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/route"
)

// TestGolden pins the record, byte for byte.
func TestGolden(t *testing.T) {
	r := simple("10.20.30.0/24", "192.168.100.254", "eth0")
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
	if err != nil || back.Op != compat.Update || !back.Route.Equal(&r) {
		t.Errorf("Decode = %+v, %v", back, err)
	}
	max := simple("255.255.255.255/32", "255.255.255.254", strings.Repeat("x", route.MaxDevLen))
	rec, err := compat.Append(nil, compat.Create, max)
	if err != nil || rec[19] != 0 || rec[37] != 0 || rec[69] != 0 {
		t.Errorf("the longest fields: %x, %v", rec, err)
	}
}

func simple(dst, gw, dev string) route.Route {
	var g netip.Addr
	if gw != "" {
		g = netip.MustParseAddr(gw)
	}
	return route.Simple(netip.MustParsePrefix(dst), g, dev)
}

// TestNoForm: the record holds only unicast IPv4 routes of the main table
// through one IPv4 gateway and an interface.
func TestNoForm(t *testing.T) {
	v6 := simple("2001:db8::/32", "::1", "eth0")
	table := simple("10.0.0.0/8", "10.1.1.1", "eth0")
	table.Table = 100
	onlink := simple("10.0.0.0/8", "", "eth0")
	inet6 := simple("10.0.0.0/8", "fe80::1", "eth0")
	bh := route.Route{Table: route.TableMain, Dst: netip.MustParsePrefix("10.0.0.0/8"), Attrs: route.Attrs{Type: route.Blackhole, Proto: route.ProtoStatic}}
	ecmp := simple("10.0.0.0/8", "10.1.1.1", "eth0")
	ecmp.Hops = []route.NextHop{{Gateway: netip.MustParseAddr("10.1.1.1"), Dev: "eth0", Weight: 1}, {Gateway: netip.MustParseAddr("10.1.1.2"), Dev: "eth0", Weight: 1}}
	for name, r := range map[string]route.Route{"IPv6": v6, "table 100": table, "on-link": onlink, "via inet6": inet6, "blackhole": bh, "ECMP": ecmp} {
		if err := r.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := compat.Append(nil, compat.Create, r); !errors.Is(err, compat.ErrNoForm) {
			t.Errorf("%s route: %v, want ErrNoForm", name, err)
		}
	}
	metric := simple("10.0.0.0/8", "10.1.1.1", "eth0")
	metric.Metric, metric.Proto = 100, route.ProtoBGP
	if _, err := compat.Append(nil, compat.Create, metric); err != nil {
		t.Errorf("a route with a metric and a protocol: %v, want its record (they are dropped)", err)
	}
}

// FuzzDecode checks that the record decoder never panics and that what it
// accepts encodes back to a record it reads the same.
func FuzzDecode(f *testing.F) {
	rec, _ := compat.Append(nil, compat.Create, simple("10.0.0.0/8", "10.1.1.1", "eth0"))
	f.Add(rec)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := compat.Decode(b)
		// What rtmd sends is a route the record holds; a record without a
		// gateway decodes (as a classic client reads it) but is never sent.
		if err != nil || got.Route.Validate() != nil || compat.Holds(&got.Route) != nil {
			return
		}
		again, err := compat.Append(nil, got.Op, got.Route)
		if err != nil {
			t.Fatalf("Append(%+v): %v", got, err)
		}
		if back, err := compat.Decode(again); err != nil || back.Op != got.Op || !back.Route.Equal(&got.Route) {
			t.Fatalf("round trip %+v -> %+v, %v", got, back, err)
		}
	})
}
