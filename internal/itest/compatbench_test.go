package itest_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
)

const (
	fanoutReaders = 30
	fanoutChanges = 10_000
)

// nativeCPU is the last native median of BenchmarkCompatFanout, in µs per
// change, so that the compat run can report its ratio to it.
var nativeCPU float64

// BenchmarkCompatFanout measures rtmd's CPU per change (user plus system,
// from /proc) while 30 readers receive 10,000 single changes: Replaces of
// distinct IPv4 /32 routes, one request each, so one batch each. The
// readers are client.Mirrors on the native socket, or classic clients on
// the compat socket that count records; both run in this process. A
// Mirror acks each change it reads with nothing more buffered, so with
// single changes rtmd reads an ack per reader per change on the native
// path. The compat run reports its ratio to the native run before it (the
// last one, with -count), as compat/native.
func BenchmarkCompatFanout(b *testing.B) {
	for _, path := range []string{"native", "compat"} {
		b.Run("path="+path, func(b *testing.B) {
			var cpu, rate []float64
			for range b.N {
				us, perSec := compatFanoutRun(b, path == "compat")
				cpu = append(cpu, us)
				rate = append(rate, perSec)
			}
			m := median(cpu)
			b.ReportMetric(m, "rtmd-us/change")
			b.ReportMetric(median(rate), "changes/s")
			switch {
			case path == "native":
				nativeCPU = m
			case nativeCPU > 0:
				b.ReportMetric(m/nativeCPU, "compat/native")
				b.Logf("rtmd CPU per change: compat %.1f µs, native %.1f µs: %.1fx", m, nativeCPU, m/nativeCPU)
			}
		})
	}
}

// compatFanoutRun runs one fresh rtmd through the changes and returns its
// CPU µs per change and the changes a second.
func compatFanoutRun(b *testing.B, useCompat bool) (usPerChange, perSec float64) {
	d := startBenchRtmd(b, "-mq", "off", "-compat-socket", "compat.sock:course", "-max-compat-conns", strconv.Itoa(fanoutReaders))
	defer d.stopBench(b)
	compatSock := filepath.Join(d.dir, "compat.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, d.socket)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pid := d.cmd.Process.Pid

	// reached(n) waits until every reader holds the first n changes.
	var reached func(n int, seq uint64)
	if useCompat {
		readers := make([]*fanoutCounter, fanoutReaders)
		for i := range readers {
			nc, err := net.Dial("unix", compatSock)
			if err != nil {
				b.Fatal(err)
			}
			readers[i] = newFanoutCounter(nc)
			defer readers[i].stop()
		}
		reached = func(n int, _ uint64) {
			for i, r := range readers {
				if err := r.wait(ctx, n); err != nil {
					b.Fatalf("compat reader %d: %v", i, err)
				}
			}
		}
	} else {
		rctx, rcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer rcancel()
		mirrors := make([]*client.Mirror, fanoutReaders)
		for i := range mirrors {
			mirrors[i] = &client.Mirror{Address: d.socket}
			wg.Go(func() { mirrors[i].Run(rctx) })
		}
		reached = func(_ int, seq uint64) {
			for i, m := range mirrors {
				if err := m.WaitSeq(ctx, seq); err != nil {
					got, _ := m.Seq()
					b.Fatalf("mirror %d: waiting for seq %d (at %d): %v", i, seq, got, err)
				}
				if n := m.Resyncs(); n > 0 {
					b.Fatalf("mirror %d fell behind: %d resyncs", i, n)
				}
			}
		}
	}
	replace := func(i int) uint64 {
		r := client.Route{
			Dst:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			NextHops: []client.NextHop{{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%4)}), Dev: "eth" + strconv.Itoa(i%3)}},
		}
		seq, err := c.Replace(ctx, r)
		if err != nil {
			b.Fatalf("replace %v: %v", r.Dst, err)
		}
		return seq
	}
	// A first change that every reader has received shows that all are
	// connected and synced; rtmd's CPU is counted from there.
	reached(1, replace(0))
	cpu0 := procCPU(b, pid)
	start := time.Now()
	var seq uint64
	for i := 1; i <= fanoutChanges; i++ {
		seq = replace(i)
	}
	reached(1+fanoutChanges, seq)
	elapsed := time.Since(start)
	cpu1 := procCPU(b, pid)
	return float64(cpu1-cpu0) / 1e3 / fanoutChanges, fanoutChanges / elapsed.Seconds()
}

// procCPU returns the user plus system CPU time of process pid, in ns.
func procCPU(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command, which is in parentheses: state is the
	// 3rd field of the line, utime and stime the 14th and 15th.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[14-3], f[15-3])
	}
	const tick = int64(time.Second / 100) // USER_HZ is 100 on Linux
	return (utime + stime) * tick
}

// fanoutCounter reads a compat connection continuously and counts the
// records; it decodes none of them.
type fanoutCounter struct {
	nc   net.Conn
	mu   sync.Mutex
	n    int // records read
	err  error
	more chan struct{} // closed and replaced when n grows or err is set
	done chan struct{}
}

func newFanoutCounter(nc net.Conn) *fanoutCounter {
	r := &fanoutCounter{nc: nc, more: make(chan struct{}), done: make(chan struct{})}
	go r.read()
	return r
}

func (r *fanoutCounter) read() {
	defer close(r.done)
	buf := make([]byte, 256*compat.Course.Size)
	var total int
	for {
		n, err := r.nc.Read(buf)
		total += n
		r.mu.Lock()
		r.n, r.err = total/compat.Course.Size, err
		close(r.more)
		r.more = make(chan struct{})
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// wait waits until n records have been read.
func (r *fanoutCounter) wait(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got, err, more := r.n, r.err, r.more
		r.mu.Unlock()
		switch {
		case got >= n:
			return nil
		case err != nil:
			return fmt.Errorf("read %d records of %d: %w", got, n, err)
		}
		select {
		case <-more:
		case <-ctx.Done():
			return fmt.Errorf("read %d records of %d: %w", got, n, ctx.Err())
		}
	}
}

func (r *fanoutCounter) stop() {
	r.nc.Close()
	<-r.done
}
