package route_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// TestInternDistinctHopLists checks that two different next-hop lists whose
// hops, written one after another without lengths, give the same bytes are
// still two attribute sets: one gateway 1.0.1.100 reads, byte for byte, as
// an on-link hop of weight 256 through "d" followed by another hop.
func TestInternDistinctHopLists(t *testing.T) {
	first := route.NextHop{Gateway: netip.MustParseAddr("10.0.0.1"), Dev: "eth0", Weight: 1}
	a := route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Hops: []route.NextHop{
		first,
		{Gateway: netip.MustParseAddr("1.0.1.100"), Dev: "eth1", Weight: 7},
	}}
	b := route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Hops: []route.NextHop{
		first,
		{Dev: "d", Weight: 256},
		{Dev: "eth1", Weight: 7},
	}}
	ra := route.Route{Table: route.TableMain, Dst: netip.MustParsePrefix("192.0.2.0/24"), Attrs: a}
	rb := route.Route{Table: route.TableMain, Dst: netip.MustParsePrefix("198.51.100.0/24"), Attrs: b}
	for _, r := range []route.Route{ra, rb} {
		if err := r.Validate(); err != nil {
			t.Fatalf("Validate(%v) = %v", r, err)
		}
	}

	var tb route.Table
	tb.Set(&ra)
	tb.Set(&rb)
	if got, _ := tb.Get(rb.Key()); !got.Equal(&b) {
		t.Errorf("Table.Get(%v) = %v, want %v", rb.Dst, got.Hops, b.Hops)
	}
	if n := tb.Distinct(); n != 2 {
		t.Errorf("Table.Distinct() = %d, want 2", n)
	}

	var in route.Interner
	ia, ib := in.Intern(&a), in.Intern(&b)
	if ia == ib {
		t.Errorf("Interner.Intern gave both hop lists the number %d", ia)
	}
}

// TestCheckDevByte: the byte CheckDev refuses is shown as the byte it is,
// not as the Latin-1 character of its value ('Ã' for the first byte of é).
func TestCheckDevByte(t *testing.T) {
	for _, tc := range []struct{ dev, want string }{
		{"eth\u00e9", `byte '\xc3' at 3`},
		{"a\x00", `byte '\x00' at 1`},
		{"a b", `byte ' ' at 1`},
	} {
		err := route.CheckDev(tc.dev)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckDev(%q) = %v, want it to name %s", tc.dev, err, tc.want)
		}
	}
}
