package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/rtm-project/rtm/client"
)

// latencyPrefix is the route whose changes carry their send time, as the
// low 8 bytes of an IPv6 gateway.
var latencyPrefix = netip.MustParsePrefix("2001:db8:ffff::/48")

func latencyRoute(sent int64) client.Route {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	binary.BigEndian.PutUint64(a[8:], uint64(sent))
	return client.Route{Dst: latencyPrefix, NextHops: []client.NextHop{{Gateway: netip.AddrFrom16(a), Dev: "lat0"}}}
}

// SubscriberMain is `rtm bench-sub SOCKET MODE UNTIL DURATION`, a
// subscriber process of the bench. It syncs, prints {"Ready": true}, then:
//   - mode "hold": waits until it holds sequence UNTIL;
//   - mode "latency": records the latency of each change of the latency
//     route from the send time it carries, until it holds the sequence
//     number it then reads from stdin (the bench's last change);
//   - mode "mac": looks up MACs from shared memory for DURATION;
//   - modes "restart" and "restart-table": waits until it is synced
//     again after its connection broke (rtmd restarted), resuming or, in
//     "restart-table", taking the whole table;
//
// and prints a SubReport.
func SubscriberMain(args []string) {
	out := json.NewEncoder(os.Stdout)
	fail := func(err error) {
		out.Encode(SubReport{Err: err.Error()})
		os.Exit(1)
	}
	if len(args) != 4 {
		fail(fmt.Errorf("usage: bench-sub SOCKET MODE UNTIL DURATION"))
	}
	until, _ := strconv.ParseUint(args[2], 10, 64)
	dur, _ := time.ParseDuration(args[3])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lat []float64
	m := &client.Mirror{Address: args[0], Dialer: client.Dialer{Name: "rtm bench-sub"}, NoResume: args[1] == "restart-table"}
	again := make(chan client.Event, 1) // the Synced after a reconnection
	if args[1] == "restart" || args[1] == "restart-table" {
		synced := 0
		m.OnEvent = func(e client.Event) {
			if e.Kind == client.Synced {
				if synced++; synced == 2 {
					again <- e
				}
			}
		}
	}
	if args[1] == "latency" {
		lat = make([]float64, 0, 1<<16)
		m.OnEvent = func(e client.Event) {
			if e.Kind == client.Change && e.Route.Dst == latencyPrefix {
				a := e.Route.NextHops[0].Gateway.As16()
				sent := int64(binary.BigEndian.Uint64(a[8:]))
				lat = append(lat, float64(monotonic()-sent)/1e3)
			}
		}
	}
	start := monotonic()
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	if err := m.WaitSeq(wctx, 0); err != nil {
		fail(err)
	}
	r := SubReport{SyncNs: monotonic() - start}
	out.Encode(struct{ Ready bool }{true})
	switch args[1] {
	case "hold":
		if err := m.WaitSeq(wctx, until); err != nil {
			fail(fmt.Errorf("waiting for seq %d: %w", until, err))
		}
		r.DoneNs = monotonic()
	case "latency":
		var last uint64
		if _, err := fmt.Fscan(os.Stdin, &last); err != nil {
			fail(fmt.Errorf("reading the last sequence number: %w", err))
		}
		if err := m.WaitSeq(wctx, last); err != nil {
			fail(fmt.Errorf("waiting for seq %d: %w", last, err))
		}
		cancel()
		<-errc
		r.Latencies = lat
	case "restart", "restart-table":
		select {
		case e := <-again:
			r.DoneNs, r.Resumed = monotonic(), e.Resumed
		case <-wctx.Done():
			fail(fmt.Errorf("not synced again: %w", wctx.Err()))
		}
	case "mac":
		keys := make([]client.MAC, 0, until)
		for _, e := range m.MACEntries() {
			keys = append(keys, e.MAC)
		}
		if len(keys) == 0 {
			fail(fmt.Errorf("no MAC entries"))
		}
		var windows []float64
		end := time.Now().Add(dur)
		for time.Now().Before(end) {
			n, t0 := 0, time.Now()
			for time.Since(t0) < 50*time.Millisecond {
				for range 1000 {
					m.LookupMAC(keys[n%len(keys)])
					n++
				}
			}
			windows = append(windows, float64(time.Since(t0).Nanoseconds())/float64(n))
		}
		slices.Sort(windows)
		r.LookupNs = windows[len(windows)/2]
	}
	r.RSS = rss(os.Getpid())
	out.Encode(r)
}
