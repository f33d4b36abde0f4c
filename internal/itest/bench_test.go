package itest_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
)

// These benchmarks run the whole system: rtmd, the rtm command and
// subscriber processes. Run them with
//
//	go test -run '^$' -bench . -benchtime 3x ./internal/itest
//
// Each reports its figures as metrics (the median of b.N runs), not ns/op.

const benchRoutes = 1_000_000

// monotonic returns CLOCK_MONOTONIC in ns: shared by all processes.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// routeFile writes n random IPv4 routes (lengths 8 to 32, 16 next hops),
// distinct prefixes, in random order. The file is the test binary's own
// (in binDir), made once per run: a fixed name in /tmp would be shared
// with, and raced by, every other run on the host.
func routeFile(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(binDir, fmt.Sprintf("bench-%d.routes", n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[uint64]bool, n)
	w := new(strings.Builder)
	for len(seen) < n {
		bits := 8 + rng.IntN(25)
		a := rng.Uint32() & ^uint32(0) << (32 - bits)
		if seen[uint64(a)<<8|uint64(bits)] {
			continue
		}
		seen[uint64(a)<<8|uint64(bits)] = true
		g := 1 + rng.IntN(16)
		fmt.Fprintf(w, "%d.%d.%d.%d/%d via 192.0.2.%d dev eth%d\n", a>>24, a>>16&255, a>>8&255, a&255, bits, g, g%4)
	}
	if err := os.WriteFile(path, []byte(w.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchSubscriber is a subscriber process that prints "ready" once it has
// synced, then reports, on stdout, the CLOCK_MONOTONIC time at which it
// held sequence RTM_UNTIL, how long its first sync took, and its RSS.
func benchSubscriberMain() {
	until, _ := strconv.ParseUint(os.Getenv("RTM_UNTIL"), 10, 64)
	m := &client.Mirror{Address: os.Getenv("RTM_SOCKET")}
	start := monotonic()
	ctx, cancel := context.WithCancel(context.Background())
	if p := os.Getenv("RTM_CPUPROFILE"); p != "" {
		f, _ := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	go m.Run(ctx)
	if err := m.WaitSeq(ctx, 0); err != nil {
		os.Exit(1)
	}
	synced := monotonic()
	fmt.Println("ready")
	if err := m.WaitSeq(ctx, until); err != nil {
		os.Exit(1)
	}
	done := monotonic()
	fmt.Printf("done %d sync_ns %d rss %d\n", done, synced-start, rss(os.Getpid()))
	cancel()
}

type benchSub struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

func startBenchSubscriber(b *testing.B, socket string, until uint64) *benchSub {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "RTM_ITEST_HELPER=benchsub", "RTM_SOCKET="+socket, fmt.Sprintf("RTM_UNTIL=%d", until))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &benchSub{cmd: cmd, out: bufio.NewScanner(out)}
	if !s.out.Scan() || s.out.Text() != "ready" {
		b.Fatal("bench subscriber did not start")
	}
	return s
}

// result waits for the subscriber's report.
func (s *benchSub) result(b *testing.B) (done, syncNs, rss int64) {
	if !s.out.Scan() {
		b.Fatal("bench subscriber failed")
	}
	fmt.Sscanf(s.out.Text(), "done %d sync_ns %d rss %d", &done, &syncNs, &rss)
	s.cmd.Wait()
	return done, syncNs, rss
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// BenchmarkLoad loads a million random IPv4 routes with `rtm route load`
// into a fresh rtmd, with 0 and 16 subscriber processes connected.
func BenchmarkLoad(b *testing.B) {
	file := routeFile(b, benchRoutes)
	for _, subs := range []int{0, 16} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			var rate, allDone, rssPeak, rssPerRoute, subRSS []float64
			for range b.N {
				d := startBenchRtmd(b)
				var ss []*benchSub
				for range subs {
					ss = append(ss, startBenchSubscriber(b, d.socket, benchRoutes))
				}
				rss0 := rss(d.cmd.Process.Pid)
				start := monotonic()
				out, err := exec.Command(filepath.Join(binDir, "rtm"), "-s", d.socket, "route", "load", file).CombinedOutput()
				end := monotonic()
				if err != nil {
					b.Fatalf("rtm route load: %v: %s", err, out)
				}
				rate = append(rate, benchRoutes/(float64(end-start)/1e9))
				last := end
				for _, s := range ss {
					done, _, r := s.result(b)
					last = max(last, done)
					subRSS = append(subRSS, float64(r)/benchRoutes)
				}
				allDone = append(allDone, float64(last-start)/1e9)
				rssPeak = append(rssPeak, float64(rss(d.cmd.Process.Pid)-rss0)/benchRoutes)
				time.Sleep(time.Second) // rtmd returns a big load's garbage to the OS
				rssPerRoute = append(rssPerRoute, float64(rss(d.cmd.Process.Pid)-rss0)/benchRoutes)
				d.stopBench(b)
			}
			b.ReportMetric(median(rate), "routes/s")
			b.ReportMetric(median(allDone), "all_subscribers_done_s")
			b.ReportMetric(median(rssPeak), "rtmd_peak_bytes/route")
			b.ReportMetric(median(rssPerRoute), "rtmd_bytes/route")
			if subs > 0 {
				b.ReportMetric(median(subRSS), "subscriber_bytes/route")
			}
		})
	}
}

// BenchmarkSnapshot times a new subscriber's first sync to a table of a
// million routes, from its dial to its Synced.
func BenchmarkSnapshot(b *testing.B) {
	file := routeFile(b, benchRoutes)
	d := startBenchRtmd(b)
	defer d.stopBench(b)
	if out, err := exec.Command(filepath.Join(binDir, "rtm"), "-s", d.socket, "route", "load", file).CombinedOutput(); err != nil {
		b.Fatalf("rtm route load: %v: %s", err, out)
	}
	var times []float64
	for range b.N {
		s := startBenchSubscriber(b, d.socket, benchRoutes)
		_, syncNs, _ := s.result(b)
		times = append(times, float64(syncNs)/1e9)
	}
	b.ReportMetric(median(times), "snapshot_s")
}

type benchDaemon struct {
	cmd    *exec.Cmd
	socket string
	dir    string
}

// startBenchRtmd starts rtmd with args in a fresh directory, its working
// directory, so that args may name files in it by relative paths. Its
// state directory is in there too, unless args name one.
func startBenchRtmd(b *testing.B, args ...string) *benchDaemon {
	dir, _ := os.MkdirTemp("", "rtmb")
	d := &benchDaemon{socket: filepath.Join(dir, "rtm.sock"), dir: dir}
	if !slices.Contains(args, "-state") {
		args = append(args, "-state", filepath.Join(dir, "state"))
	}
	d.cmd = exec.Command(filepath.Join(binDir, "rtmd"), append([]string{"-socket", d.socket}, args...)...)
	d.cmd.Dir = dir
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for i := 0; ; i++ {
		if c, err := client.Dial(context.Background(), d.socket); err == nil {
			c.Close()
			return d
		}
		if i > 500 {
			d.cmd.Process.Kill()
			d.cmd.Wait()
			os.RemoveAll(dir)
			b.Fatal("rtmd did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *benchDaemon) stopBench(b *testing.B) {
	d.cmd.Process.Signal(unix.SIGTERM)
	d.cmd.Wait()
	os.RemoveAll(d.dir)
}

// macBenchMain looks up RTM_MACS test MACs in a loop for five 200 ms
// windows and prints the median ns per lookup.
func macBenchMain() {
	nmacs, _ := strconv.Atoi(os.Getenv("RTM_MACS"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &client.Mirror{Address: os.Getenv("RTM_SOCKET")}
	go m.Run(ctx)
	if err := m.WaitSeq(ctx, uint64(nmacs)); err != nil {
		os.Exit(1)
	}
	keys := make([]client.MAC, nmacs)
	for i := range keys {
		keys[i] = testMAC(i)
	}
	var windows []float64
	for range 5 {
		n, start := 0, time.Now()
		for time.Since(start) < 200*time.Millisecond {
			for range 1000 {
				if _, ok := m.LookupMAC(keys[n%nmacs]); !ok {
					fmt.Fprintln(os.Stderr, "not found")
					os.Exit(1)
				}
				n++
			}
		}
		windows = append(windows, float64(time.Since(start).Nanoseconds())/float64(n))
	}
	fmt.Printf("ns_per_lookup %.2f\n", median(windows))
}

// BenchmarkLookupMAC measures LookupMAC in a client process while rtmd
// makes about 100,000 MAC changes a second, and the time to add 64,000
// entries with one `rtm mac load`.
func BenchmarkLookupMAC(b *testing.B) {
	d := startBenchRtmd(b)
	defer d.stopBench(b)
	const n = 1024
	c, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	entries := make([]client.MACEntry, n)
	for i := range entries {
		entries[i] = client.MACEntry{MAC: testMAC(i), IP: patternIP(testMAC(i), 0)}
	}
	if _, _, err := c.LoadMACs(context.Background(), entries); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var writes atomic.Int64
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for k := uint64(1); ctx.Err() == nil; k++ {
			for i := range entries {
				entries[i].IP = patternIP(entries[i].MAC, k)
			}
			if _, _, err := c.LoadMACs(ctx, entries[:1000]); err == nil {
				writes.Add(1000)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	var ns []float64
	start := time.Now()
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), "RTM_ITEST_HELPER=macbench", "RTM_SOCKET="+d.socket, fmt.Sprintf("RTM_MACS=%d", n))
		out, err := cmd.Output()
		var v float64
		if _, serr := fmt.Sscanf(string(out), "ns_per_lookup %f", &v); err != nil || serr != nil {
			b.Fatalf("mac bench helper: %v %q", err, out)
		}
		ns = append(ns, v)
	}
	rate := float64(writes.Load()) / time.Since(start).Seconds()
	cancel()
	b.ReportMetric(median(ns), "lookup_ns")
	b.ReportMetric(rate, "writes/s")

	// 64,000 entries through `rtm mac load`.
	var file strings.Builder
	for i := range 64000 {
		m := client.MAC{4, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		fmt.Fprintf(&file, "%v 10.%d.%d.%d\n", m, byte(i>>16), byte(i>>8), byte(i))
	}
	path := filepath.Join(d.dir, "macs")
	os.WriteFile(path, []byte(file.String()), 0o644)
	t0 := time.Now()
	if out, err := exec.Command(filepath.Join(binDir, "rtm"), "-s", d.socket, "mac", "load", path).CombinedOutput(); err != nil {
		b.Fatalf("rtm mac load: %v %s", err, out)
	}
	b.ReportMetric(time.Since(t0).Seconds(), "mac_load_64k_s")
}
