// Package bench is `rtm bench`: it starts its own rtmd on private names,
// runs real subscriber processes (the rtm binary itself, in a hidden mode),
// measures each scenario several times, and runs the same work through
// references (the IPC limit, the kernel's routing table, Redis) where it
// can, so that every figure comes with something to hold it against.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
)

// Config says what to run.
type Config struct {
	RTMD      string   // the rtmd binary
	RTM       string   // the rtm binary (subscriber processes run it)
	Routes    int      // routes in load and snapshot
	Clients   int      // subscribers in the scenarios that use many
	Runs      int      // repetitions of each measurement
	Scenarios []string // "load", "snapshot", "churn", "latency", "mac", "memory", "restart"
	Duration  time.Duration
	Refs      []string  // references to run: "ipc-limit", "kernel", "redis"; nil for all
	Progress  io.Writer // nil for none

	// Created, if not nil, gets a line for each thing the run makes that
	// could outlive it, as it makes it, so that a caller can check that
	// nothing is left: "dir PATH" (the private directory, under
	// os.TempDir), "rtmd PID SOCKET" (its shared memory and queue names
	// derive from SOCKET), "process PID NAME" and "netns NAME".
	Created io.Writer
}

func (b *bench) useRef(name string) bool {
	return b.cfg.Refs == nil || slices.Contains(b.cfg.Refs, name)
}

// Scenarios lists the scenarios in the order they run.
var Scenarios = []string{"load", "snapshot", "churn", "latency", "mac", "memory", "restart"}

// Report is the result of a run, as `rtm bench -j` prints it.
type Report struct {
	Machine Machine  `json:"machine"`
	Config  RunInfo  `json:"config"`
	Results []Result `json:"results"`
}

// Machine describes where the figures were measured.
type Machine struct {
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	CPU    string `json:"cpu,omitempty"`
}

// RunInfo repeats the configuration in the report.
type RunInfo struct {
	Routes  int `json:"routes"`
	Clients int `json:"clients"`
	Runs    int `json:"runs"`
}

// Result is one figure: the median of the runs, with their min and max.
type Result struct {
	Scenario    string      `json:"scenario"`
	Subscribers int         `json:"subscribers"`
	Metric      string      `json:"metric"`
	Unit        string      `json:"unit"`
	Median      float64     `json:"median"`
	Min         float64     `json:"min"`
	Max         float64     `json:"max"`
	References  []Reference `json:"references"`
}

// Reference is the same work done another way. Ratio is rtm's median over
// the reference's. A reference that could not run says why in Skipped.
type Reference struct {
	Name    string  `json:"name"`
	Median  float64 `json:"median,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
}

// bench holds a run's state.
type bench struct {
	cfg     Config
	dir     string // private directory: sockets, route files
	results []Result
	mem     *loadRun // the load with the most subscribers, for "memory"
	// inMemory starts rtmd with -state none: the reference that tells
	// what its journal costs.
	inMemory bool
	daemons  int // rtmds started, for their socket names

	createdMu sync.Mutex
}

// created writes a line to cfg.Created: what was made, and its names.
func (b *bench) created(what string, names ...any) {
	if b.cfg.Created == nil {
		return
	}
	b.createdMu.Lock()
	defer b.createdMu.Unlock()
	fmt.Fprintln(b.cfg.Created, append([]any{what}, names...)...)
}

// Run runs the scenarios. It cleans up every process, socket, queue,
// shared memory object and network namespace it made, also when ctx is
// cancelled.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 2 * time.Second
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = Scenarios
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	dir, err := os.MkdirTemp("", "rtmbench")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, dir: dir}
	defer os.RemoveAll(dir)
	b.created("dir", dir)
	for _, s := range Scenarios {
		if !slices.Contains(cfg.Scenarios, s) || ctx.Err() != nil {
			continue
		}
		b.progress("%s:", s)
		var err error
		switch s {
		case "load":
			err = b.load(ctx)
		case "snapshot":
			err = b.snapshot(ctx)
		case "churn":
			err = b.churn(ctx)
		case "latency":
			err = b.latency(ctx)
		case "mac":
			err = b.mac(ctx)
		case "memory":
			err = b.memory(ctx)
		case "restart":
			err = b.restart(ctx)
		}
		b.progress("\n")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &Report{Machine: machine(), Config: RunInfo{cfg.Routes, cfg.Clients, cfg.Runs}, Results: b.results}, nil
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, format, args...)
	}
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return m
}

// add records a figure from its runs.
func (b *bench) add(scenario string, subs int, metric, unit string, runs []float64, refs ...Reference) {
	s := slices.Clone(runs)
	slices.Sort(s)
	r := Result{Scenario: scenario, Subscribers: subs, Metric: metric, Unit: unit,
		Median: s[len(s)/2], Min: s[0], Max: s[len(s)-1], References: refs}
	for i := range r.References {
		if ref := &r.References[i]; ref.Skipped == "" && ref.Median != 0 {
			ref.Ratio = r.Median / ref.Median
		}
	}
	b.results = append(b.results, r)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// monotonic is CLOCK_MONOTONIC in ns, shared by every process.
func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// rss returns a process's resident set size in bytes.
func rss(pid int) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// daemon is the bench's own rtmd.
type daemon struct {
	cmd    *exec.Cmd
	socket string
	done   chan struct{}
}

func (b *bench) startRtmd(ctx context.Context) (*daemon, error) {
	b.daemons++
	return b.startRtmdOn(ctx, filepath.Join(b.dir, fmt.Sprintf("rtm%d.sock", b.daemons)), filepath.Join(b.dir, fmt.Sprintf("state%d", b.daemons)))
}

// startRtmdOn starts rtmd on socket with its state in state: again after
// a crash, on the same ones.
func (b *bench) startRtmdOn(ctx context.Context, socket, state string) (*daemon, error) {
	d := &daemon{socket: socket, done: make(chan struct{})}
	if b.inMemory {
		state = "none"
	}
	d.cmd = exec.Command(b.cfg.RTMD, "-socket", d.socket, "-no-console", "-backlog", strconv.Itoa(256<<20), "-state", state)
	log := &tail{max: 4 << 10}
	d.cmd.Stderr = log
	// If the bench dies, rtmd stops too, and cleans up after itself.
	d.cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting rtmd: %w", err)
	}
	b.created("rtmd", d.cmd.Process.Pid, d.socket)
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := client.Dial(ctx, d.socket); err == nil {
			c.Close()
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("rtmd on %s exited at start: %s", d.socket, log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return nil, fmt.Errorf("rtmd did not start on %s: %s", d.socket, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tail keeps the last max bytes written to it, for rtmd's log.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// stop stops rtmd with SIGTERM, which removes its socket, queue and shared
// memory.
func (d *daemon) stop() {
	d.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// routeFile writes n random routes (IPv4, or IPv6 with v6), distinct
// prefixes, over 16 next hops, in random order, and returns its path.
func (b *bench) routeFile(n int, v6 bool) (string, error) {
	name := filepath.Join(b.dir, fmt.Sprintf("routes-%d-%v", n, v6))
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	seen := make(map[[2]uint64]bool, n)
	var sb strings.Builder
	for len(seen) < n {
		g := 1 + rng.IntN(16)
		if v6 {
			bits := 16 + rng.IntN(49)
			hi := 0x2000_0000_0000_0000 | rng.Uint64()>>3
			hi &^= (1<<(64-min(bits, 64)) - 1)
			if bits == 64 {
				hi = 0x2000_0000_0000_0000 | rng.Uint64()>>3
			}
			k := [2]uint64{hi, uint64(bits)}
			if seen[k] {
				continue
			}
			seen[k] = true
			fmt.Fprintf(&sb, "%x:%x:%x:%x::/%d via fe80::%x dev eth%d\n", hi>>48, hi>>32&0xffff, hi>>16&0xffff, hi&0xffff, bits, g, g%4)
			continue
		}
		bits := 8 + rng.IntN(25)
		a := rng.Uint32() & ^uint32(0) << (32 - bits)
		k := [2]uint64{uint64(a), uint64(bits)}
		if seen[k] {
			continue
		}
		seen[k] = true
		fmt.Fprintf(&sb, "%d.%d.%d.%d/%d via 192.0.2.%d dev eth%d\n", a>>24, a>>16&255, a>>8&255, a&255, bits, g, g%4)
	}
	return name, os.WriteFile(name, []byte(sb.String()), 0o644)
}

// subscriber is a subscriber process: `rtm bench-sub`.
type subscriber struct {
	cmd *exec.Cmd
	in  io.WriteCloser // latency mode: the last sequence number
	out *json.Decoder
}

// SubReport is what a subscriber process prints when it is done.
type SubReport struct {
	DoneNs    int64     `json:"done_ns"`   // CLOCK_MONOTONIC when it held sequence Until
	SyncNs    int64     `json:"sync_ns"`   // from dial to its first Synced
	RSS       int64     `json:"rss"`       // its RSS then
	Latencies []float64 `json:"latencies"` // latency mode: us per change
	LookupNs  float64   `json:"lookup_ns"` // mac mode: median ns per LookupMAC
	Resumed   bool      `json:"resumed"`   // restart modes: it resumed
	Err       string    `json:"err,omitempty"`
}

func (b *bench) startSub(ctx context.Context, socket, mode string, until uint64) (*subscriber, error) {
	cmd := exec.CommandContext(ctx, b.cfg.RTM, "bench-sub", socket, mode, strconv.FormatUint(until, 10), b.cfg.Duration.String())
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b.created("process", cmd.Process.Pid, "bench-sub")
	s := &subscriber{cmd: cmd, in: in, out: json.NewDecoder(out)}
	var ready struct{ Ready bool }
	if err := s.out.Decode(&ready); err != nil || !ready.Ready {
		s.kill()
		return nil, fmt.Errorf("subscriber did not start: %v", err)
	}
	return s, nil
}

// until tells a latency-mode subscriber the sequence number of the last
// change.
func (s *subscriber) until(seq uint64) error {
	_, err := fmt.Fprintln(s.in, seq)
	return err
}

func (s *subscriber) result() (SubReport, error) {
	var r SubReport
	err := s.out.Decode(&r)
	s.cmd.Wait()
	if err == nil && r.Err != "" {
		err = fmt.Errorf("subscriber: %s", r.Err)
	}
	return r, err
}

func (s *subscriber) kill() {
	s.cmd.Process.Kill()
	s.in.Close()
	s.cmd.Wait()
}

func (b *bench) startSubs(ctx context.Context, socket, mode string, n int, until uint64) ([]*subscriber, error) {
	var subs []*subscriber
	for range n {
		s, err := b.startSub(ctx, socket, mode, until)
		if err != nil {
			killAll(subs)
			return nil, err
		}
		subs = append(subs, s)
	}
	// Each has synced when it printed ready.
	return subs, ctx.Err()
}

func killAll(subs []*subscriber) {
	for _, s := range subs {
		s.kill()
	}
}

// Print writes the report as a table: each figure, its references, and the
// ratio of rtm's figure to each.
func Print(w io.Writer, r *Report) {
	fmt.Fprintf(w, "rtm bench: %d routes, %d subscribers, median of %d runs (min..max)\n", r.Config.Routes, r.Config.Clients, r.Config.Runs)
	fmt.Fprintf(w, "machine: %d cores, %s, kernel %s, %s\n\n", r.Machine.Cores, r.Machine.CPU, r.Machine.Kernel, r.Machine.Go)
	fmt.Fprintf(w, "%-9s %4s  %-28s %14s  %-25s  %s\n", "SCENARIO", "SUBS", "METRIC", "RTM", "MIN..MAX", "REFERENCES (median, rtm/ref)")
	for _, x := range r.Results {
		var refs []string
		for _, ref := range x.References {
			if ref.Skipped != "" {
				refs = append(refs, fmt.Sprintf("%s: skipped (%s)", ref.Name, ref.Skipped))
			} else {
				refs = append(refs, fmt.Sprintf("%s: %s (%.2fx)", ref.Name, num(ref.Median), ref.Ratio))
			}
		}
		fmt.Fprintf(w, "%-9s %4d  %-28s %14s  %-25s  %s\n", x.Scenario, x.Subscribers, x.Metric+" ("+x.Unit+")",
			num(x.Median), num(x.Min)+".."+num(x.Max), strings.Join(refs, "; "))
	}
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
