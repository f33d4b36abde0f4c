package itest_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/wire"
)

func mustRoute(t *testing.T, s string) client.Route {
	t.Helper()
	r, err := client.ParseRoute(s)
	if err != nil {
		t.Fatalf("ParseRoute(%q): %v", s, err)
	}
	return r
}

// TestRouteSemantics drives the route model of issue 11 through the
// library against a real rtmd: what each write does, the error values a
// caller branches on, and the sequence numbers writes return.
func TestRouteSemantics(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	ctx := context.Background()

	r := client.Route{Dst: netip.MustParsePrefix("10.0.0.0/8"), Metric: 100,
		NextHops: []client.NextHop{{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "eth0"}}}
	seq1, err := c.Add(ctx, r)
	if err != nil || seq1 != 1 {
		t.Fatalf("Add = %d, %v; want 1, nil", seq1, err)
	}
	if _, err := c.Add(ctx, r); !errors.Is(err, client.ErrExists) {
		t.Errorf("second Add = %v, want ErrExists", err)
	}
	// The same prefix in another table is another route.
	r100 := r
	r100.Table = 100
	if seq, err := c.Add(ctx, r100); err != nil || seq != 2 {
		t.Errorf("Add in table 100 = %d, %v; want 2, nil", seq, err)
	}
	if _, err := c.Change(ctx, client.Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), NextHops: r.NextHops}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Change of a missing route = %v, want ErrNotFound", err)
	}
	// A replace with the value the route has changes nothing and uses no
	// sequence number.
	if seq, err := c.Replace(ctx, r); err != nil || seq != 2 {
		t.Errorf("Replace with the same value = %d, %v; want 2 (unchanged), nil", seq, err)
	}

	// ECMP, read back whole by a lookup in its table.
	ecmp := mustRoute(t, "10.1.0.0/16 table 100 proto bgp metric 20 nexthop via 192.0.2.1 dev eth0 weight 3 nexthop via inet6 fe80::1 dev eth1 weight 1")
	seq, err := c.Replace(ctx, ecmp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, 100, netip.MustParseAddr("10.1.2.3"))
	if err != nil || got.String() != ecmp.String() || got.Table != 100 || len(got.NextHops) != 2 || got.NextHops[0].Weight != 3 {
		t.Errorf("Get(100, 10.1.2.3) = %v (%+v), %v; want %v", got, got, err, ecmp)
	}
	if got, err := c.Get(ctx, 0, netip.MustParseAddr("10.1.2.3")); err != nil || got.Dst != r.Dst || got.Table != client.TableMain {
		t.Errorf("Get(main, 10.1.2.3) = %v, %v; want the main table's 10.0.0.0/8", got, err)
	}
	if _, err := c.Get(ctx, 0, netip.MustParseAddr("192.168.1.1")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get with no route = %v, want ErrNotFound", err)
	}
	bh := mustRoute(t, "blackhole 192.168.0.0/16")
	if _, err := c.Add(ctx, bh); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, 0, netip.MustParseAddr("192.168.1.1")); err != nil || got.Type != client.Blackhole || len(got.NextHops) != 0 {
		t.Errorf("Get through a blackhole = %+v, %v; want the blackhole route", got, err)
	}

	// Read your writes: a mirror that reaches the write's sequence number
	// has it.
	m := &client.Mirror{Address: d.socket}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.Run(mctx)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := m.WaitSeq(wctx, seq); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.LookupIn(100, netip.MustParseAddr("10.1.9.9")); !ok || got.String() != ecmp.String() {
		t.Errorf("Mirror.LookupIn(100) = %v, %v; want %v", got, ok, ecmp)
	}

	// A delete that names a next hop deletes only a route through it.
	wrong := client.Selector{Mode: client.Exact, Prefix: r.Dst, Dev: "eth9"}
	if _, err := c.DeleteMatching(ctx, wrong); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("DeleteMatching through eth9 = %v, want ErrNotFound", err)
	}
	if _, err := c.DeleteMatching(ctx, client.Selector{Mode: client.Exact, Prefix: r.Dst, Dev: "eth0"}); err != nil {
		t.Errorf("DeleteMatching through eth0 = %v", err)
	}
	if _, err := c.Delete(ctx, 0, r.Dst); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Delete of a deleted route = %v, want ErrNotFound", err)
	}

	// A flush by selector deletes what it picks and nothing else.
	for _, s := range []string{"10.2.0.0/16 via 192.0.2.1 dev eth0 table 100", "10.3.0.0/16 dev eth1 table 100", "11.0.0.0/8 dev eth1 table 100", "10.4.0.0/16 dev eth1"} {
		if _, err := c.Replace(ctx, mustRoute(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := c.FlushRoutes(ctx, client.Selector{Table: 100, Mode: client.Root, Prefix: netip.MustParsePrefix("10.0.0.0/8"), Dev: "eth1"})
	if err != nil || n != 2 { // 10.1.0.0/16 (eth1 is its second hop) and 10.3.0.0/16
		t.Errorf("FlushRoutes = %d, %v; want 2", n, err)
	}
	lines, _ := d.table()
	want := []string{
		"blackhole 192.168.0.0/16 proto static",
		"10.4.0.0/16 dev eth1 proto static",
		"10.0.0.0/8 via 192.0.2.1 dev eth0 table 100 proto static metric 100",
		"10.2.0.0/16 via 192.0.2.1 dev eth0 table 100 proto static",
		"11.0.0.0/8 dev eth1 table 100 proto static",
	}
	if !sameRoutes(t, lines, want) {
		t.Errorf("after the flush: %q\nwant %q", lines, want)
	}
}

// sameRoutes compares route lines as sets, each parsed so that word order
// and spacing do not matter.
func sameRoutes(t *testing.T, got, want []string) bool {
	t.Helper()
	norm := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			out = append(out, mustRoute(t, l).String())
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(got), norm(want))
}

// TestVersion1Refused: a client of protocol version 1 gets the clear
// refusal of the handshake.
func TestVersion1Refused(t *testing.T) {
	d := startRtmd(t)
	nc, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(wire.AppendHello(nil, wire.Hello{Version: 1, Name: "old rtm"})); err != nil {
		t.Fatal(err)
	}
	typ, body, err := wire.NewReader(nc).ReadFrame()
	if err != nil || typ != wire.TError || !strings.Contains(string(body), "unsupported protocol version 1: rtmd speaks version 2") {
		t.Errorf("answer to a version-1 Hello: %d %q %v; want the Error naming both versions", typ, body, err)
	}
}

// TestApplyChanges: a list of changes is applied in order in one request;
// without force it stops at the first failure, with force it goes on, and
// each failure names its place in the list and its kind.
func TestApplyChanges(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	ctx := context.Background()
	var l client.Changes
	for _, s := range []string{"10.1.0.0/16 dev eth0", "10.2.0.0/16 dev eth0", "10.1.0.0/16 dev eth1", "10.3.0.0/16 dev eth0"} {
		if err := l.Add(mustRoute(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Apply(ctx, &l, false)
	if err != nil || res.Applied != 2 || len(res.Failed) != 1 || res.Failed[0].Index != 2 || !errors.Is(res.Failed[0].Err, client.ErrExists) || res.Seq != 2 {
		t.Fatalf("Apply = %+v, %v; want 2 applied, change 3 failed with ErrExists, seq 2", res, err)
	}
	if _, err := c.Get(ctx, 0, netip.MustParseAddr("10.3.0.1")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("the change after the failure was applied: %v", err)
	}
	l.Reset()
	l.DeleteMatching(client.Selector{Mode: client.Exact, Prefix: netip.MustParsePrefix("10.9.0.0/16")})
	l.Add(mustRoute(t, "10.3.0.0/16 dev eth0"))
	l.AddMAC(client.MACEntry{MAC: client.MAC{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.0.0.1"), Dev: "eth0"})
	res, err = c.Apply(ctx, &l, true)
	if err != nil || res.Applied != 2 || len(res.Failed) != 1 || res.Failed[0].Index != 0 || !errors.Is(res.Failed[0].Err, client.ErrNotFound) || res.Seq != 4 {
		t.Fatalf("Apply with force = %+v, %v; want 2 applied, change 1 failed with ErrNotFound, seq 4", res, err)
	}
	if got, err := c.Get(ctx, 0, netip.MustParseAddr("10.3.0.1")); err != nil || got.Dst.String() != "10.3.0.0/16" {
		t.Errorf("Get after the forced list = %v, %v", got, err)
	}
}
