package itest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
)

// randRoute draws from a small key space (three tables, a few prefixes),
// so that adds collide with existing routes, changes and deletes find
// them, and replaces do both; the routes have every shape: ECMP with
// weights, on-link, IPv6 gateways for IPv4, blackholes and the like,
// metrics, protocols and source addresses.
func randRoute(rng *rand.Rand) client.Route {
	r := client.Route{Table: []uint32{0, 100, 200}[rng.IntN(3)], Metric: uint32(rng.IntN(3) * 50),
		Protocol: []client.Protocol{0, client.ProtoBGP, client.ProtoKernel}[rng.IntN(3)]}
	v6 := rng.IntN(5) == 0
	if v6 {
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(16)), byte(rng.IntN(16))}
		r.Dst = netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(17)).Masked()
	} else {
		a := [4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(64)), 0}
		r.Dst = netip.PrefixFrom(netip.AddrFrom4(a), 16+rng.IntN(9)).Masked()
		if rng.IntN(8) == 0 {
			r.Src = netip.AddrFrom4([4]byte{192, 0, 2, 200})
		}
	}
	switch rng.IntN(10) {
	case 0:
		r.Type = []client.RouteType{client.Blackhole, client.Unreachable, client.Prohibit}[rng.IntN(3)]
		return r
	case 1, 2:
		for i := range 2 + rng.IntN(3) {
			h := client.NextHop{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(10*i + 1 + rng.IntN(4))}), Dev: fmt.Sprintf("eth%d", i), Weight: 1 + rng.IntN(4)}
			if v6 || rng.IntN(4) == 0 {
				h.Gateway = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(10*i + 1 + rng.IntN(4))})
			}
			r.NextHops = append(r.NextHops, h)
		}
		return r
	}
	h := client.NextHop{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + rng.IntN(4))}), Dev: fmt.Sprintf("eth%d", rng.IntN(3))}
	switch {
	case v6:
		h.Gateway = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(1 + rng.IntN(4))})
	case rng.IntN(6) == 0:
		h.Gateway = netip.Addr{} // on-link
	}
	r.NextHops = []client.NextHop{h}
	return r
}

// TestSubscribersConverge is the multi-process test of issue 2, with the
// routes of issue 11: rtmd, five subscriber processes, 10,000 seeded random
// operations from four concurrent library writers (adds, changes,
// replaces, deletes by key and by matching next hop, flushes by selector)
// and the rtm command; one subscriber joins midway, one is stopped with
// SIGSTOP while a big batch goes through (past its backlog cap) and then
// continued. At the end every subscriber's copy equals rtmd's tables
// exactly.
func TestSubscribersConverge(t *testing.T) {
	d := startRtmd(t, "-backlog", "16384")
	var subs []*subscriber
	for range 4 {
		subs = append(subs, startSubscriber(t, d.socket))
	}
	const writers, opsPerWriter = 4, 2500
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.dial()
			rng := rand.New(rand.NewPCG(42, uint64(w)))
			ctx := context.Background()
			for range opsPerWriter {
				r := randRoute(rng)
				var err error
				switch k := rng.IntN(100); {
				case k < 25:
					_, err = c.Add(ctx, r)
				case k < 50:
					_, err = c.Change(ctx, r)
				case k < 75:
					_, err = c.Replace(ctx, r)
				case k < 90:
					_, err = c.Delete(ctx, r.Table, r.Dst)
				case k < 98:
					sel := client.Selector{Table: r.Table, Mode: client.Exact, Prefix: r.Dst}
					if len(r.NextHops) > 0 {
						sel.Dev = r.NextHops[0].Dev
					}
					_, err = c.DeleteMatching(ctx, sel)
				default:
					// A flush by selector: a /12 of one table, or
					// the routes of one protocol through one device.
					sel := client.Selector{Table: r.Table, Mode: client.Root, Prefix: netip.PrefixFrom(r.Dst.Addr(), 12).Masked()}
					if rng.IntN(2) == 0 {
						sel = client.Selector{Protocol: r.Protocol, HasProto: r.Protocol != 0, Dev: "eth1"}
					}
					_, _, err = c.FlushRoutes(ctx, sel)
				}
				if _, ok := err.(*client.ServerError); err != nil && !ok {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	waitOps := func(n int64) {
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
	}
	stopped := subs[1]
	waitOps(2000)
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Batches far over the 16 KiB backlog cap, and over what the socket
	// buffers hold, while the subscriber sleeps.
	for j := range 3 {
		var big []client.Route
		for i := range 20000 {
			big = append(big, client.Route{
				Dst:      netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}), 32),
				NextHops: []client.NextHop{{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(9 + j)}), Dev: "big0"}},
			})
		}
		if _, _, err := d.dial().Load(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	d.mustRtm("route", "add", "10.200.0.0/16", "via", "192.0.2.1", "dev", "cli0")
	waitOps(5000)
	subs = append(subs, startSubscriber(t, d.socket)) // joins midway
	waitOps(7000)
	time.Sleep(200 * time.Millisecond)
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d.mustRtm("route", "del", "10.200.0.0/16")

	want, seq := d.table()
	if len(want) < 20000 {
		t.Fatalf("rtmd has %d routes, want at least the 20000 of the batch", len(want))
	}
	t.Logf("rtmd: %d routes at seq %d", len(want), seq)
	for i, s := range subs {
		got, resyncs := s.dump(t, seq)
		if !slices.Equal(got, want) {
			t.Errorf("subscriber %d: %d routes differ from rtmd's %d\n%s", i, len(got), len(want), diff(got, want))
		}
		if s == stopped && resyncs == 0 {
			t.Errorf("stopped subscriber was not resynced after its backlog overflowed")
		}
		t.Logf("subscriber %d: %d routes, %d resyncs", i, len(got), resyncs)
	}
}

// diff returns the first few lines that differ between two sorted tables.
func diff(got, want []string) string {
	var out []string
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	for _, l := range want {
		if !g[l] && len(out) < 10 {
			out = append(out, "-"+l)
		}
	}
	for _, l := range got {
		if !w[l] && len(out) < 20 {
			out = append(out, "+"+l)
		}
	}
	return fmt.Sprint(out)
}
