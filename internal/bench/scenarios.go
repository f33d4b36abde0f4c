package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// loadRun is one `rtm route load` into a fresh rtmd with subs subscribers.
type loadRun struct {
	seconds   float64 // the load command, start to exit
	allDone   float64 // start until the last subscriber held the table
	rtmdBytes float64 // rtmd's RSS growth per route, a second after the load
	subBytes  float64 // a subscriber's RSS per route
}

func (b *bench) loadOnce(ctx context.Context, file string, n, subs int) (loadRun, error) {
	var r loadRun
	d, err := b.startRtmd(ctx)
	if err != nil {
		return r, err
	}
	defer d.stop()
	ss, err := b.startSubs(ctx, d.socket, "hold", subs, uint64(n))
	if err != nil {
		return r, err
	}
	defer killAll(ss)
	rss0 := rss(d.cmd.Process.Pid)
	start := monotonic()
	if out, err := exec.CommandContext(ctx, b.cfg.RTM, "-s", d.socket, "route", "load", file).CombinedOutput(); err != nil {
		return r, fmt.Errorf("rtm route load: %v: %s", err, out)
	}
	end := monotonic()
	r.seconds = float64(end-start) / 1e9
	last := end
	for _, s := range ss {
		rep, err := s.result()
		if err != nil {
			return r, err
		}
		last = max(last, rep.DoneNs)
		r.subBytes = max(r.subBytes, float64(rep.RSS)/float64(n))
	}
	r.allDone = float64(last-start) / 1e9
	if n >= 100_000 {
		// rtmd gives a big load's garbage back (FreeOSMemory after a load
		// of 100,000 routes or more, off its loop): let it.
		time.Sleep(time.Second)
	}
	r.rtmdBytes = float64(rss(d.cmd.Process.Pid)-rss0) / float64(n)
	return r, nil
}

// streamBytes returns the bytes of the change stream that loading the
// routes of file sends each subscriber.
func streamBytes(file string) (int, int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	n, size := 0, 0
	for line := range splitLines(string(data)) {
		r, err := parseRoute(line)
		if err != nil {
			return 0, 0, err
		}
		size += 1 + len(wire.AppendRoute(nil, r))
		n++
	}
	return n, size + size/(64<<10)*(wire.HeaderLen+12), nil
}

func splitLines(s string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			i := 0
			for i < len(s) && s[i] != '\n' {
				i++
			}
			if i > 0 && !yield(s[:i]) {
				return
			}
			if i < len(s) {
				i++
			}
			s = s[i:]
		}
	}
}

func (b *bench) subCounts() []int {
	c := max(b.cfg.Clients, 1)
	return slices.Compact([]int{0, max(c/4, 1), c})
}

func (b *bench) load(ctx context.Context) error {
	file, err := b.routeFile(b.cfg.Routes, false)
	if err != nil {
		return err
	}
	_, bytes, err := streamBytes(file)
	if err != nil {
		return err
	}
	n := b.cfg.Routes
	for _, subs := range b.subCounts() {
		var rates, done, memRates []float64
		var last loadRun
		for i := range b.cfg.Runs {
			b.progress(" %d subscribers run %d", subs, i+1)
			r, err := b.loadOnce(ctx, file, n, subs)
			if err != nil {
				return err
			}
			rates = append(rates, float64(n)/r.seconds)
			done = append(done, r.allDone)
			last = r
			if subs == 0 { // and the same without the journal, alternating
				b.inMemory = true
				r, err := b.loadOnce(ctx, file, n, subs)
				b.inMemory = false
				if err != nil {
					return err
				}
				memRates = append(memRates, float64(n)/r.seconds)
			}
		}
		if subs == max(b.cfg.Clients, 1) {
			b.mem = &last
		}
		kernel := b.kernelLoad(ctx, file, n, subs)
		redis := b.redisLoad(ctx, file, n, subs)
		if subs == 0 {
			limit := b.fanoutRef(ctx, bytes, 1, func(s float64) float64 { return float64(n) / s })
			b.add("load", 0, "routes_per_s", "routes/s", rates, limit, kernel.rate, redis.rate, Reference{Name: "state-none", Median: median(memRates)})
			continue
		}
		limit := b.fanoutRef(ctx, bytes, subs, func(s float64) float64 { return s })
		b.add("load", subs, "all_subscribers_done_s", "s", done, limit, kernel.done, redis.done)
	}
	// The IPv6 variant: a fifth as many routes, no subscribers.
	n6 := max(n/5, 1)
	file6, err := b.routeFile(n6, true)
	if err != nil {
		return err
	}
	var rates []float64
	for i := range b.cfg.Runs {
		b.progress(" IPv6 run %d", i+1)
		r, err := b.loadOnce(ctx, file6, n6, 0)
		if err != nil {
			return err
		}
		rates = append(rates, float64(n6)/r.seconds)
	}
	_, bytes6, err := streamBytes(file6)
	if err != nil {
		return err
	}
	b.add("load", 0, "v6_routes_per_s", "routes/s", rates, b.fanoutRef(ctx, bytes6, 1, func(s float64) float64 { return float64(n6) / s }))
	return nil
}

func (b *bench) memory(ctx context.Context) error {
	if b.mem == nil {
		file, err := b.routeFile(b.cfg.Routes, false)
		if err != nil {
			return err
		}
		r, err := b.loadOnce(ctx, file, b.cfg.Routes, max(b.cfg.Clients, 1))
		if err != nil {
			return err
		}
		b.mem = &r
	}
	none := Reference{Name: "ipc-limit", Skipped: "no reference: memory is rtm's own"}
	b.add("memory", 0, "rtmd_bytes_per_route", "bytes", []float64{b.mem.rtmdBytes}, none)
	b.add("memory", max(b.cfg.Clients, 1), "subscriber_bytes_per_route", "bytes", []float64{b.mem.subBytes}, none)
	return nil
}

func (b *bench) snapshot(ctx context.Context) error {
	file, err := b.routeFile(b.cfg.Routes, false)
	if err != nil {
		return err
	}
	_, bytes, err := streamBytes(file)
	if err != nil {
		return err
	}
	d, err := b.startRtmd(ctx)
	if err != nil {
		return err
	}
	defer d.stop()
	if out, err := exec.CommandContext(ctx, b.cfg.RTM, "-s", d.socket, "route", "load", file).CombinedOutput(); err != nil {
		return fmt.Errorf("rtm route load: %v: %s", err, out)
	}
	var times []float64
	for i := range b.cfg.Runs {
		b.progress(" run %d", i+1)
		s, err := b.startSub(ctx, d.socket, "hold", uint64(b.cfg.Routes))
		if err != nil {
			return err
		}
		rep, err := s.result()
		if err != nil {
			return err
		}
		times = append(times, float64(rep.SyncNs)/1e9)
	}
	b.add("snapshot", 1, "snapshot_s", "s", times, b.fanoutRef(ctx, bytes, 1, func(s float64) float64 { return s }))
	return nil
}

// churn changes, replaces and deletes routes of a table as fast as rtmd
// takes them, for the configured time, with the subscribers following.
func (b *bench) churn(ctx context.Context) error {
	n := min(b.cfg.Routes, 100_000)
	file, err := b.routeFile(n, false)
	if err != nil {
		return err
	}
	routes, err := readRoutes(file)
	if err != nil {
		return err
	}
	subs := max(b.cfg.Clients, 1)
	var rates, backlogs, memRates []float64
	var refBytes, refChanges int
	for run := range b.cfg.Runs {
		b.progress(" run %d", run+1)
		rate, backlog, bytes, changes, err := b.churnOnce(ctx, file, routes, subs, run)
		if err != nil {
			return err
		}
		rates = append(rates, rate)
		backlogs = append(backlogs, backlog)
		b.inMemory = true // and the same without the journal, alternating
		memRate, _, _, _, err := b.churnOnce(ctx, file, routes, subs, run)
		b.inMemory = false
		if err != nil {
			return err
		}
		memRates = append(memRates, memRate)
		refBytes, refChanges = bytes, changes
	}
	limit := b.fanoutRef(ctx, refBytes, subs, func(s float64) float64 { return float64(refChanges) / s })
	b.add("churn", subs, "changes_per_s", "changes/s", rates, limit, Reference{Name: "state-none", Median: median(memRates)})
	b.add("churn", subs, "max_backlog", "bytes", backlogs, Reference{Name: "ipc-limit", Skipped: "no reference: a plain fan-out keeps no backlog"})
	return nil
}

func (b *bench) churnOnce(ctx context.Context, file string, routes []client.Route, subs, run int) (rate, backlog float64, bytes, changes int, err error) {
	d, err := b.startRtmd(ctx)
	if err != nil {
		return
	}
	defer d.stop()
	if out, err2 := exec.CommandContext(ctx, b.cfg.RTM, "-s", d.socket, "route", "load", file).CombinedOutput(); err2 != nil {
		err = fmt.Errorf("rtm route load: %v: %s", err2, out)
		return
	}
	c, err := client.Dial(ctx, d.socket)
	if err != nil {
		return
	}
	defer c.Close()
	ctl, err := client.Dial(ctx, d.socket)
	if err != nil {
		return
	}
	defer ctl.Close()
	// The subscribers follow until they are killed; their acks tell when
	// they hold the last change.
	ss, err := b.startSubs(ctx, d.socket, "hold", subs, ^uint64(0))
	if err != nil {
		return
	}
	defer killAll(ss)
	// Batches of 1,000 replaces that move routes to another next hop, and
	// now and then a delete and a re-add.
	rng := rand.New(rand.NewPCG(uint64(run), 9))
	var batches []*client.Batch
	for range 64 {
		var bt client.Batch
		for range 1000 {
			r := routes[rng.IntN(len(routes))]
			r.NextHops = []client.NextHop{{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(17 + rng.IntN(200))}), Dev: r.NextHops[0].Dev}}
			bt.Add(r)
		}
		bt.Sort()
		batches = append(batches, &bt)
	}
	st0, err := ctl.Status(ctx)
	if err != nil {
		return
	}
	var maxBacklog int
	stopPoll := make(chan struct{})
	var pollWG sync.WaitGroup
	pollWG.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-t.C:
			}
			list, err := ctl.Clients(ctx)
			if err != nil {
				return
			}
			for _, cl := range list {
				maxBacklog = max(maxBacklog, cl.Backlog)
			}
		}
	})
	// Four writers keep requests in flight, so that the measure is what
	// rtmd and the subscribers keep up with, not one writer's round trips.
	start := monotonic()
	deadline := time.Now().Add(b.cfg.Duration)
	var writers sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		writers.Go(func() {
			wc := c
			if w > 0 {
				var err error
				if wc, err = client.Dial(ctx, d.socket); err != nil {
					errs <- err
					return
				}
				defer wc.Close()
			}
			wrng := rand.New(rand.NewPCG(uint64(run), uint64(w)))
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += 4 {
				if _, _, err := wc.LoadBatch(ctx, batches[i%len(batches)]); err != nil {
					errs <- err
					return
				}
				if i%8 == w {
					r := routes[wrng.IntN(len(routes))]
					if _, err := wc.Delete(ctx, r.Table, r.Dst); err == nil {
						wc.Add(ctx, r)
					}
				}
			}
		})
	}
	writers.Wait()
	close(errs)
	if err = <-errs; err != nil {
		return
	}
	close(stopPoll)
	pollWG.Wait()
	st, err := ctl.Status(ctx)
	if err != nil {
		return
	}
	for {
		list, err2 := ctl.Clients(ctx)
		if err2 != nil {
			err = err2
			return
		}
		caughtUp := 0
		for _, cl := range list {
			if cl.Subscribed && cl.Acked >= st.Seq {
				caughtUp++
			}
		}
		if caughtUp >= subs || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	end := monotonic()
	changes = int(st.Seq - st0.Seq)
	rate = float64(changes) / (float64(end-start) / 1e9)
	// A change record of an IPv4 route is about 17 bytes in the stream.
	return rate, float64(maxBacklog), changes * 17, changes, nil
}

func readRoutes(file string) ([]client.Route, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var routes []client.Route
	for line := range splitLines(string(data)) {
		r, err := client.ParseRoute(line)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// latency sends one change at a time, at a steady rate, and the
// subscribers time each against the CLOCK_MONOTONIC it carries, until they
// hold the last one.
func (b *bench) latency(ctx context.Context) error {
	const rate = 10_000
	subs := max(b.cfg.Clients, 1)
	var p50, p99, p999 []float64
	for run := range b.cfg.Runs {
		b.progress(" run %d", run+1)
		d, err := b.startRtmd(ctx)
		if err != nil {
			return err
		}
		ss, err := b.startSubs(ctx, d.socket, "latency", subs, 0)
		if err != nil {
			d.stop()
			return err
		}
		c, err := client.Dial(ctx, d.socket)
		if err != nil {
			killAll(ss)
			d.stop()
			return err
		}
		start := time.Now()
		end := start.Add(b.cfg.Duration - 200*time.Millisecond)
		for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
			next := start.Add(time.Duration(i) * time.Second / rate)
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
			if _, err := c.Replace(ctx, latencyRoute(monotonic())); err != nil {
				break
			}
		}
		// The subscribers record until they hold the last change, however
		// long they took to start.
		st, err := c.Status(ctx)
		for _, s := range ss {
			if err == nil {
				err = s.until(st.Seq)
			}
		}
		var all []float64
		for _, s := range ss {
			if err != nil {
				break
			}
			var rep SubReport
			rep, err = s.result()
			all = append(all, rep.Latencies...)
		}
		if err != nil {
			killAll(ss)
			c.Close()
			d.stop()
			return err
		}
		c.Close()
		d.stop()
		if len(all) == 0 {
			return fmt.Errorf("no latency samples")
		}
		slices.Sort(all)
		q := func(p float64) float64 { return all[min(int(p*float64(len(all))), len(all)-1)] }
		p50, p99, p999 = append(p50, q(0.5)), append(p99, q(0.99)), append(p999, q(0.999))
	}
	r50, r99, r999 := b.latencyRef(ctx, subs, rate)
	b.add("latency", subs, "p50_us", "us", p50, r50)
	b.add("latency", subs, "p99_us", "us", p99, r99)
	b.add("latency", subs, "p999_us", "us", p999, r999)
	return nil
}

// mac times adding entries, and LookupMAC in subscriber processes while
// rtmd makes about 100,000 changes a second.
func (b *bench) mac(ctx context.Context) error {
	const entries = 64_000
	var adds, lookups []float64
	for run := range b.cfg.Runs {
		b.progress(" run %d", run+1)
		d, err := b.startRtmd(ctx)
		if err != nil {
			return err
		}
		err = func() error {
			defer d.stop()
			c, err := client.Dial(ctx, d.socket)
			if err != nil {
				return err
			}
			defer c.Close()
			es := make([]client.MACEntry, entries)
			for i := range es {
				es[i] = client.MACEntry{MAC: client.MAC{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, IP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
			}
			t0 := time.Now()
			if _, _, err := c.LoadMACs(ctx, es); err != nil {
				return err
			}
			adds = append(adds, entries/time.Since(t0).Seconds())
			// One reader: the figure is the cost of a lookup, which more
			// readers than cores would only blur with time-slicing.
			ss, err := b.startSubs(ctx, d.socket, "mac", 1, entries)
			if err != nil {
				return err
			}
			wctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() {
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				for k := 0; wctx.Err() == nil; k++ {
					for i := range 1000 {
						e := &es[(k*1000+i)%entries]
						e.IP = netip.AddrFrom4([4]byte{11, byte(k), byte(i >> 8), byte(i)})
					}
					lo := (k * 1000) % entries
					c.LoadMACs(wctx, es[lo:lo+1000])
					select {
					case <-t.C:
					case <-wctx.Done():
					}
				}
			})
			var ns []float64
			for _, s := range ss {
				rep, err := s.result()
				if err != nil {
					cancel()
					wg.Wait()
					return err
				}
				ns = append(ns, rep.LookupNs)
			}
			cancel()
			wg.Wait()
			lookups = append(lookups, median(ns))
			return nil
		}()
		if err != nil {
			return err
		}
	}
	b.add("mac", 1, "lookup_ns", "ns", lookups, Reference{Name: "ipc-limit", Skipped: "no reference: a lookup makes no IPC"})
	b.add("mac", 0, "adds_per_s", "entries/s", adds, Reference{Name: "ipc-limit", Skipped: "not measured for MAC adds yet"})
	return nil
}

// parseRoute parses a line of a bench route file.
func parseRoute(line string) (route.Route, error) {
	r, _, err := route.ParseLine(line)
	return r, err
}

// restart kills rtmd (SIGKILL) holding the route file's routes, with
// subscribers connected, starts it again on the same socket and state,
// and measures how long until it serves again (a client's Hello is
// answered: the state is read back) and, after that, until every
// subscriber is synced again: resuming, and taking the whole table.
func (b *bench) restart(ctx context.Context) error {
	file, err := b.routeFile(b.cfg.Routes, false)
	if err != nil {
		return err
	}
	subs := max(b.cfg.Clients, 1)
	var resumed float64
	for _, mode := range []string{"restart", "restart-table"} {
		var serving, back []float64
		for run := range b.cfg.Runs {
			b.progress(" %s run %d", mode, run+1)
			b.daemons++
			socket := filepath.Join(b.dir, fmt.Sprintf("rtm%d.sock", b.daemons))
			state := filepath.Join(b.dir, fmt.Sprintf("state%d", b.daemons))
			d, err := b.startRtmdOn(ctx, socket, state)
			if err != nil {
				return err
			}
			if out, err := exec.CommandContext(ctx, b.cfg.RTM, "-s", socket, "route", "load", file).CombinedOutput(); err != nil {
				d.stop()
				return fmt.Errorf("rtm route load: %v: %s", err, out)
			}
			ss, err := b.startSubs(ctx, socket, mode, subs, 0)
			if err != nil {
				d.stop()
				return err
			}
			start := monotonic()
			d.cmd.Process.Kill()
			<-d.done
			d, err = b.startRtmdOn(ctx, socket, state)
			if err != nil {
				killAll(ss)
				return err
			}
			up := monotonic()
			last := up
			for _, s := range ss {
				rep, err := s.result()
				if err != nil {
					killAll(ss)
					d.stop()
					return err
				}
				if rep.Resumed != (mode == "restart") {
					killAll(ss)
					d.stop()
					return fmt.Errorf("%s: a subscriber resumed: %v", mode, rep.Resumed)
				}
				last = max(last, rep.DoneNs)
			}
			d.stop()
			serving = append(serving, float64(up-start)/1e9)
			back = append(back, float64(last-up)/1e9)
		}
		// The goals of issue 13 are the references: serving again within
		// 1 s, subscribers back within 0.5 s after that when resuming.
		if mode == "restart" {
			resumed = median(back)
			b.add("restart", 0, "serving_again_s", "s", serving, Reference{Name: "goal", Median: 1})
			b.add("restart", subs, "subscribers_resumed_s", "s", back, Reference{Name: "goal", Median: 0.5})
		} else {
			b.add("restart", subs, "subscribers_resynced_s", "s", back, Reference{Name: "resumed", Median: resumed})
		}
	}
	return nil
}
