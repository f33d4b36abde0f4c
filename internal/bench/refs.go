package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

// fanoutRef is the IPC limit: the same number of bytes, written by this
// process to readers plain reader processes over Unix stream sockets in
// 64 KiB writes, with nothing else done: no tables, no decoding. conv turns
// the seconds until every reader has every byte into the metric.
func (b *bench) fanoutRef(ctx context.Context, bytes, readers int, conv func(float64) float64) Reference {
	ref := Reference{Name: "ipc-limit"}
	if !b.useRef(ref.Name) {
		ref.Skipped = "not selected (-refs)"
		return ref
	}
	var runs []float64
	for range b.cfg.Runs {
		s, err := b.fanout(ctx, bytes, readers)
		if err != nil {
			ref.Skipped = err.Error()
			return ref
		}
		runs = append(runs, conv(s))
	}
	ref.Median = median(runs)
	return ref
}

func (b *bench) fanout(ctx context.Context, bytes, readers int) (float64, error) {
	// 64 KiB writes from a buffer that is not page-aligned (see
	// shared/IPC-LIMITS.md: an aligned source halves the kernel's copy).
	buf := make([]byte, 64<<10+64)[64:]
	for i := range buf {
		buf[i] = byte(i)
	}
	type rd struct {
		cmd *exec.Cmd
		w   *os.File
		out *bufio.Reader
	}
	var rs []rd
	defer func() {
		for _, r := range rs {
			r.w.Close()
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	}()
	for range readers {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		w, child := os.NewFile(uintptr(fds[0]), "w"), os.NewFile(uintptr(fds[1]), "r")
		cmd := exec.CommandContext(ctx, b.cfg.RTM, "bench-ref-reader", strconv.Itoa(bytes))
		cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		cmd.Stdin = child
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			child.Close()
			w.Close()
			return 0, err
		}
		child.Close()
		b.created("process", cmd.Process.Pid, "bench-ref-reader")
		rs = append(rs, rd{cmd, w, bufio.NewReader(out)})
	}
	start := monotonic()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			for left := bytes; left > 0; {
				n := min(left, len(buf))
				if _, err := r.w.Write(buf[:n]); err != nil {
					return
				}
				left -= n
			}
		})
	}
	wg.Wait()
	last := start
	for _, r := range rs {
		line, err := r.out.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("fan-out reader: %v", err)
		}
		t, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		last = max(last, t)
	}
	return float64(last-start) / 1e9, nil
}

// RefReaderMain is `rtm bench-ref-reader BYTES`: it reads BYTES from stdin
// and prints the CLOCK_MONOTONIC time it had them all. With "latency" for
// BYTES it reads 8-byte stamps until EOF and prints each one's latency in
// us, as a JSON array.
func RefReaderMain(args []string) {
	if args[0] == "latency" {
		var lat []float64
		var stamp [8]byte
		for {
			if _, err := io.ReadFull(os.Stdin, stamp[:]); err != nil {
				break
			}
			lat = append(lat, float64(monotonic()-int64(binary.LittleEndian.Uint64(stamp[:])))/1e3)
		}
		json.NewEncoder(os.Stdout).Encode(lat)
		return
	}
	n, _ := strconv.Atoi(args[0])
	buf := make([]byte, 64<<10)
	for n > 0 {
		k, err := os.Stdin.Read(buf)
		if err != nil {
			os.Exit(1)
		}
		n -= k
	}
	fmt.Println(monotonic())
}

// refPair is a reference for the load scenario's two metrics.
type refPair struct{ rate, done Reference }

func skipped(name, why string) refPair {
	return refPair{Reference{Name: name, Skipped: why}, Reference{Name: name, Skipped: why}}
}

// kernelLoad inserts the same routes into the Linux kernel's routing table,
// with `ip -batch` in a network namespace the bench makes and deletes, with
// `ip monitor route` processes as the subscribers. It runs once: the kernel
// takes tens of seconds for a million routes.
func (b *bench) kernelLoad(ctx context.Context, file string, n, subs int) refPair {
	const name = "kernel"
	if !b.useRef(name) {
		return skipped(name, "not selected (-refs)")
	}
	if os.Geteuid() != 0 {
		return skipped(name, "not root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return skipped(name, "ip not found")
	}
	ns := fmt.Sprintf("rtmbench%d", os.Getpid())
	run := func(args ...string) error {
		out, err := exec.CommandContext(ctx, ip, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	b.created("netns", ns)
	if err := run("netns", "add", ns); err != nil {
		return skipped(name, err.Error())
	}
	defer exec.Command(ip, "netns", "del", ns).Run()
	// The routes' interfaces: veth pairs (dummy devices need a module
	// that not every kernel has).
	for i := range 4 {
		dev, peer := fmt.Sprintf("eth%d", i), fmt.Sprintf("peer%d", i)
		for _, args := range [][]string{
			{"-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer},
			{"-n", ns, "link", "set", dev, "up"},
			{"-n", ns, "link", "set", peer, "up"},
			{"-n", ns, "addr", "add", "192.0.2.254/24", "dev", dev},
		} {
			if err := run(args...); err != nil {
				return skipped(name, err.Error())
			}
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return skipped(name, err.Error())
	}
	var batch strings.Builder
	for line := range splitLines(string(data)) {
		fmt.Fprintf(&batch, "route add %s\n", line)
	}
	batchFile := filepath.Join(b.dir, "kernel.batch")
	if err := os.WriteFile(batchFile, []byte(batch.String()), 0o644); err != nil {
		return skipped(name, err.Error())
	}
	b.progress(" (kernel)")
	var mons []*exec.Cmd
	seen := make([]atomic.Int64, subs)
	dones := make(chan int64, subs)
	for i := range subs {
		cmd := exec.CommandContext(ctx, ip, "-n", ns, "monitor", "route")
		cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return skipped(name, err.Error())
		}
		b.created("process", cmd.Process.Pid, "ip-monitor")
		mons = append(mons, cmd)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.Contains(sc.Text(), " via ") && seen[i].Add(1) == int64(n) {
					dones <- monotonic()
					io.Copy(io.Discard, out)
					return
				}
			}
		}()
	}
	defer func() {
		for _, m := range mons {
			m.Process.Kill()
			m.Wait()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the monitors listen
	start := monotonic()
	if err := run("-n", ns, "-batch", batchFile); err != nil {
		return skipped(name, err.Error())
	}
	end := monotonic()
	rate := Reference{Name: name, Median: float64(n) / (float64(end-start) / 1e9)}
	// A monitor that falls behind loses updates (netlink's ENOBUFS) and
	// never sees them all: give up on it after a while and say so.
	last := end
	wait := time.NewTimer(max(10*time.Second, 2*time.Duration(end-start)))
	defer wait.Stop()
	for range subs {
		select {
		case t := <-dones:
			last = max(last, t)
		case <-wait.C:
			least := int64(n)
			for i := range seen {
				least = min(least, seen[i].Load())
			}
			return refPair{rate: rate, done: Reference{Name: name,
				Skipped: fmt.Sprintf("ip monitor lost updates: one saw %d of %d routes (netlink ENOBUFS)", least, n)}}
		case <-ctx.Done():
			return skipped(name, "interrupted")
		}
	}
	return refPair{rate: rate, done: Reference{Name: name, Median: float64(last-start) / 1e9}}
}

// redisLoad does the load as SONiC distributes routes through Redis: the
// producer writes a hash per route and PUBLISHes each change; subscriber
// processes SUBSCRIBE and fetch each route's hash. It runs once, on a
// redis-server the bench starts on a private Unix socket.
func (b *bench) redisLoad(ctx context.Context, file string, n, subs int) refPair {
	const name = "redis"
	if !b.useRef(name) {
		return skipped(name, "not selected (-refs)")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return skipped(name, "redis-server not installed")
	}
	sock := filepath.Join(b.dir, "redis.sock")
	srv := exec.CommandContext(ctx, server, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", b.dir)
	srv.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := srv.Start(); err != nil {
		return skipped(name, err.Error())
	}
	b.created("process", srv.Process.Pid, "redis-server")
	defer func() { srv.Process.Kill(); srv.Wait() }()
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer rdb.Close()
	for i := 0; rdb.Ping(ctx).Err() != nil; i++ {
		if i > 200 {
			return skipped(name, "redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.progress(" (redis)")
	routes, err := readRoutes(file)
	if err != nil {
		return skipped(name, err.Error())
	}
	var subCmds []*exec.Cmd
	dones := make(chan int64, subs)
	for range subs {
		cmd := exec.CommandContext(ctx, b.cfg.RTM, "bench-redis-sub", sock, strconv.Itoa(n))
		cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return skipped(name, err.Error())
		}
		b.created("process", cmd.Process.Pid, "bench-redis-sub")
		subCmds = append(subCmds, cmd)
		r := bufio.NewReader(out)
		if line, _ := r.ReadString('\n'); line != "ready\n" {
			return skipped(name, "redis subscriber did not start")
		}
		go func() {
			line, _ := r.ReadString('\n')
			t, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
			dones <- t
		}()
	}
	defer func() {
		for _, c := range subCmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	start := monotonic()
	pipe := rdb.Pipeline()
	for i, r := range routes {
		key := "ROUTE_TABLE:" + r.Dst.String()
		pipe.HSet(ctx, key, "nexthop", r.NextHops[0].Gateway.String(), "ifname", r.NextHops[0].Dev)
		pipe.Publish(ctx, "ROUTE_TABLE", key)
		if i%1000 == 999 {
			if _, err := pipe.Exec(ctx); err != nil {
				return skipped(name, err.Error())
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return skipped(name, err.Error())
	}
	end := monotonic()
	rate := Reference{Name: name, Median: float64(n) / (float64(end-start) / 1e9)}
	last := end
	wait := time.NewTimer(max(30*time.Second, 10*time.Duration(end-start)))
	defer wait.Stop()
	for range subs {
		select {
		case t := <-dones:
			if t == 0 {
				// Redis drops a subscriber whose output buffer passes
				// client-output-buffer-limit pubsub.
				return refPair{rate: rate, done: Reference{Name: name, Skipped: "a subscriber was dropped or failed (Redis drops slow pubsub clients)"}}
			}
			last = max(last, t)
		case <-wait.C:
			return refPair{rate: rate, done: Reference{Name: name, Skipped: "subscribers did not get every route in time"}}
		case <-ctx.Done():
			return skipped(name, "interrupted")
		}
	}
	return refPair{rate: rate, done: Reference{Name: name, Median: float64(last-start) / 1e9}}
}

// RedisSubMain is `rtm bench-redis-sub SOCKET N`: a SONiC-style consumer
// that SUBSCRIBEs to route changes and fetches each route's hash, and
// prints the CLOCK_MONOTONIC time it had N of them.
func RedisSubMain(args []string) {
	ctx := context.Background()
	n, _ := strconv.Atoi(args[1])
	opts := &redis.Options{Network: "unix", Addr: args[0]}
	sub := redis.NewClient(opts).Subscribe(ctx, "ROUTE_TABLE")
	if _, err := sub.Receive(ctx); err != nil {
		os.Exit(1)
	}
	get := redis.NewClient(opts)
	table := make(map[string]map[string]string, n)
	fmt.Println("ready")
	ch := sub.Channel(redis.WithChannelSize(1 << 16))
	for msg := range ch {
		h, err := get.HGetAll(ctx, msg.Payload).Result()
		if err != nil {
			os.Exit(1)
		}
		table[msg.Payload] = h
		if len(table) == n {
			fmt.Println(monotonic())
			return
		}
	}
	os.Exit(1)
}

// latencyRef is the IPC limit for the latency scenario: the bench writes an
// 8-byte CLOCK_MONOTONIC stamp to readers plain reader processes over Unix
// sockets, one at a time at rate a second, and each reader records how long
// each stamp took to reach it. It returns the p50, p99 and p999 in us.
func (b *bench) latencyRef(ctx context.Context, readers, rate int) (p50, p99, p999 Reference) {
	mk := func(v float64) Reference { return Reference{Name: "ipc-limit", Median: v} }
	fail := func(err error) (Reference, Reference, Reference) {
		r := Reference{Name: "ipc-limit", Skipped: err.Error()}
		return r, r, r
	}
	if !b.useRef("ipc-limit") {
		return fail(errors.New("not selected (-refs)"))
	}
	type rd struct {
		cmd *exec.Cmd
		w   *os.File
		out io.Reader
	}
	var rs []rd
	defer func() {
		for _, r := range rs {
			r.w.Close()
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	}()
	for range readers {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		w, child := os.NewFile(uintptr(fds[0]), "w"), os.NewFile(uintptr(fds[1]), "r")
		cmd := exec.CommandContext(ctx, b.cfg.RTM, "bench-ref-reader", "latency")
		cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		cmd.Stdin = child
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			child.Close()
			w.Close()
			return fail(err)
		}
		child.Close()
		b.created("process", cmd.Process.Pid, "bench-ref-reader")
		rs = append(rs, rd{cmd, w, out})
	}
	start := time.Now()
	end := start.Add(b.cfg.Duration - 200*time.Millisecond)
	var stamp [8]byte
	for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
		if wt := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wt > 0 {
			time.Sleep(wt)
		}
		binary.LittleEndian.PutUint64(stamp[:], uint64(monotonic()))
		for _, r := range rs {
			r.w.Write(stamp[:])
		}
	}
	var all []float64
	for _, r := range rs {
		r.w.Close()
		var lat []float64
		if err := json.NewDecoder(r.out).Decode(&lat); err != nil {
			return fail(fmt.Errorf("latency reader: %v", err))
		}
		all = append(all, lat...)
	}
	if len(all) == 0 {
		return fail(errors.New("no samples"))
	}
	slices.Sort(all)
	q := func(p float64) float64 { return all[min(int(p*float64(len(all))), len(all)-1)] }
	return mk(q(0.5)), mk(q(0.99)), mk(q(0.999))
}
