package compat_test

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
)

// pad returns s as hex, NUL-padded to n bytes.
func pad(s string, n int) string {
	return hex.EncodeToString([]byte(s)) + strings.Repeat("00", n-len(s))
}

func routeRecord(op uint32, dst, gw, dev string) compat.Record {
	r := simple(dst, gw, dev)
	return compat.Route(op, &r)
}

// TestGolden pins each layout, byte for byte, against the offset tables in
// the package comment and docs/protocol.md.
func TestGolden(t *testing.T) {
	upd := routeRecord(compat.Update, "10.20.30.0/24", "192.168.100.254", "eth0")
	m := mac.Addr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	for _, tc := range []struct {
		name   string
		layout *compat.Layout
		rec    compat.Record
		want   string
	}{
		{"course route", compat.Course, upd,
			"01000000" + pad("10.20.30.0", 16) + "18" + pad("192.168.100.254", 16) + pad("eth0", 32) + "000000"},
		{"u16 route", compat.U16, upd,
			"01000000" + pad("10.20.30.0", 16) + "1800" + pad("192.168.100.254", 16) + pad("eth0", 32) + "0000"},
		{"ghk84 route", compat.GHK84, upd,
			"01000000" + "00000000" + pad("10.20.30.0", 16) + "1800" + pad("192.168.100.254", 16) + pad("eth0", 32) + "0000" +
				"00000000" + "01000000"},
		{"ghk84 MAC", compat.GHK84, compat.Record{Op: compat.Create, Table: compat.MACs, MAC: m, Loop: 1},
			"00000000" + "01000000" + pad("02:00:5e:10:00:01", 66) + "0000" + "00000000" + "01000000"},
		{"ghk84 routes marker", compat.GHK84, compat.Record{Op: compat.None, Table: compat.Routes, Sync: compat.RoutesDone, Loop: 1},
			"03000000" + "00000000" + strings.Repeat("00", 68) + "01000000" + "01000000"},
		{"ghk84 MACs marker", compat.GHK84, compat.Record{Op: compat.None, Table: compat.MACs, Sync: compat.MACsDone, Loop: 1},
			"03000000" + "01000000" + strings.Repeat("00", 68) + "02000000" + "01000000"},
		{"ghk84 goodbye", compat.GHK84, compat.Record{Op: compat.None},
			"03000000" + strings.Repeat("00", 80)},
	} {
		got := tc.layout.Append([]byte("x"), &tc.rec)[1:]
		if h := hex.EncodeToString(got); h != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.name, h, tc.want)
		}
		if len(got) != tc.layout.Size {
			t.Errorf("%s: %d bytes, want %d", tc.name, len(got), tc.layout.Size)
		}
		if back, err := tc.layout.Decode(got); err != nil || back != only(tc.layout, tc.rec) {
			t.Errorf("%s: Decode = %+v, %v; want %+v", tc.name, back, err, tc.rec)
		}
	}
}

// only returns what layout l carries of rec.
func only(l *compat.Layout, rec compat.Record) compat.Record {
	if !l.HasMACs() {
		rec.Table, rec.Sync, rec.Loop = 0, 0, 0
	}
	return rec
}

// TestLongestFields: the longest address and interface name leave the
// NUL that C clients print up to.
func TestLongestFields(t *testing.T) {
	long := routeRecord(compat.Create, "255.255.255.255/32", "255.255.255.254", strings.Repeat("x", route.MaxDevLen))
	for _, l := range compat.Layouts {
		b := l.Append(nil, &long)
		if back, err := l.Decode(b); err != nil || back != only(l, long) {
			t.Errorf("%s: %+v, %v", l, back, err)
		}
	}
}

func TestLayoutByName(t *testing.T) {
	for _, l := range compat.Layouts {
		if got, err := compat.LayoutByName(l.Name); got != l || err != nil {
			t.Errorf("LayoutByName(%q) = %v, %v", l.Name, got, err)
		}
	}
	_, err := compat.LayoutByName("u32")
	if err == nil || !strings.Contains(err.Error(), `"u32"`) || !strings.Contains(err.Error(), "course, u16 or ghk84") {
		t.Errorf("LayoutByName(u32): %v", err)
	}
}

func TestObject(t *testing.T) {
	m := mac.Addr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	if got := compat.MACObject(m); got != "/02:00:5e:10:00:01" {
		t.Errorf("MACObject = %q", got)
	}
	for _, ip := range []string{"10.0.0.1", "255.255.255.255"} {
		got := compat.AppendObject(nil, netip.MustParseAddr(ip))
		if h := hex.EncodeToString(got); h != pad(ip, compat.ObjectSize) {
			t.Errorf("object of %s: %s", ip, h)
		}
	}
	if err := compat.HoldsIP(netip.MustParseAddr("2001:db8::1")); !errors.Is(err, compat.ErrNoForm) {
		t.Errorf("HoldsIP(IPv6) = %v", err)
	}
}

// TestDecodeErrors: a record that is not what rtmd sends names the field.
func TestDecodeErrors(t *testing.T) {
	good := routeRecord(compat.Create, "10.0.0.0/8", "10.1.1.1", "eth0")
	for _, tc := range []struct {
		layout *compat.Layout
		edit   func([]byte)
		want   string
	}{
		{compat.Course, func(b []byte) { b[0] = 3 }, "op 3"},
		{compat.Course, func(b []byte) { b[20] = 33 }, "mask 33"},
		{compat.Course, func(b []byte) { b[20] = 4 }, "mask 4 of destination 10.0.0.0"},
		{compat.U16, func(b []byte) { b[21] = 1 }, "mask 264"},
		{compat.Course, func(b []byte) { copy(b[4:], "10.0.0.0.0") }, "destination"},
		{compat.Course, func(b []byte) { b[19] = 'x' }, "destination"},
		{compat.Course, func(b []byte) { b[30] = 'x' }, "gateway"},
		{compat.GHK84, func(b []byte) { b[4] = 2 }, "table 2"},
		{compat.GHK84, func(b []byte) { b[76] = 3 }, "synchronized 3"},
		{compat.GHK84, func(b []byte) { b[80] = 2 }, "loop 2"},
	} {
		b := tc.layout.Append(nil, &good)
		tc.edit(b)
		if _, err := tc.layout.Decode(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.layout, err, tc.want)
		}
	}
	if _, err := compat.U16.Decode(make([]byte, 84)); err == nil || !strings.Contains(err.Error(), "84 bytes, want 72") {
		t.Errorf("short: %v", err)
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
		if err := compat.Holds(&r); !errors.Is(err, compat.ErrNoForm) {
			t.Errorf("%s route: %v, want ErrNoForm", name, err)
		}
	}
	metric := simple("10.0.0.0/8", "10.1.1.1", "eth0")
	metric.Metric, metric.Proto = 100, route.ProtoBGP
	if err := compat.Holds(&metric); err != nil {
		t.Errorf("a route with a metric and a protocol: %v, want its record (they are dropped)", err)
	}
}

// FuzzDecode checks that the decoders never panic and that what they
// accept encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	good := routeRecord(compat.Create, "10.0.0.0/8", "10.1.1.1", "eth0")
	mr := compat.Record{Op: compat.Delete, Table: compat.MACs, MAC: mac.Addr{2, 0, 0, 0, 0, 1}, Sync: compat.MACsDone, Loop: 1}
	for _, l := range compat.Layouts {
		f.Add(l.Append(nil, &good))
	}
	f.Add(compat.GHK84.Append(nil, &mr))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range compat.Layouts {
			got, err := l.Decode(b)
			if err != nil {
				continue
			}
			if again := l.Append(nil, &got); string(again) != string(b) {
				// Only padding the decoder does not read may differ.
				back, err := l.Decode(again)
				if err != nil || back != got {
					t.Fatalf("%s: round trip %+v -> %+v, %v", l, got, back, err)
				}
			}
		}
	})
}
