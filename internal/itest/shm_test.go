package itest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/shm"
)

// plantSegment makes a segment that holds ip for every MAC in macs, under
// the name name in /dev/shm: what an attacker who guessed a name would
// plant. It is removed at the end of the test, before rtmd stops.
func plantSegment(t *testing.T, name string, ip netip.Addr, macs ...client.MAC) {
	t.Helper()
	s, err := shm.Create(name+"-tmp", 64, 99, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, m := range macs {
		s.Set(i, m, ip)
	}
	if err := os.Rename(filepath.Join(shm.Dir, s.Name), filepath.Join(shm.Dir, name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(shm.Dir, name)) })
}

// mirrorSyncs runs a Mirror on socket until it has synced, and returns it
// with a channel of its later Synced events and of its errors.
func mirrorSyncs(t *testing.T, socket string) (*client.Mirror, chan uint64, chan error) {
	t.Helper()
	synced, errs := make(chan uint64, 100), make(chan error, 100)
	m := &client.Mirror{Address: socket,
		OnEvent: func(e client.Event) {
			if e.Kind == client.Synced {
				synced <- e.Seq
			}
		},
		OnError: func(err error) { errs <- err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-synced:
	case err := <-errs:
		t.Fatalf("mirror: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("mirror did not sync")
	}
	return m, synced, errs
}

// checkMACs checks that m finds every one of the first n test MACs with
// the value version v of patternIP.
func checkMACs(t *testing.T, m *client.Mirror, n int, v uint64) {
	t.Helper()
	for i := range n {
		if ip, ok := m.LookupMAC(testMAC(i)); !ok || ip != patternIP(testMAC(i), v) {
			t.Fatalf("LookupMAC(%v) = %v, %v; want %v", testMAC(i), ip, ok, patternIP(testMAC(i), v))
		}
	}
}

func loadMACs(t *testing.T, c *client.Conn, n int, v uint64) {
	t.Helper()
	var entries []client.MACEntry
	for i := range n {
		entries = append(entries, client.MACEntry{MAC: testMAC(i), IP: patternIP(testMAC(i), v)})
	}
	if _, _, err := c.LoadMACs(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

// TestMACPlantedNames plants objects at every name an attacker could
// guess for the next or the newest generation of rtmd's segment (the old
// BASE.N scheme, a FIFO, a symbolic link, a segment that gives a MAC the
// attacker's IP) and then makes the segment grow: rtmd never uses them,
// `rtm mac get` (which no longer looks in /dev/shm) and a Mirror read
// rtmd's values, and nothing hangs. Objects of rtmd's base that are not
// its own are left at start-up, with a warning.
func TestMACPlantedNames(t *testing.T) {
	// A base of the test's own, so that objects can be planted before
	// rtmd starts.
	base := shm.DefaultName(shortDir(t))
	t.Cleanup(func() {
		if removed, foreign, _ := shm.RemoveStale(base); len(removed)+len(foreign) > 0 {
			t.Errorf("left behind: %v %v", removed, foreign)
		}
	})
	evil := netip.MustParseAddr("6.6.6.6")
	if os.Geteuid() == 0 {
		// Before rtmd starts: objects of another uid, which rtmd must
		// neither remove as stale nor use.
		for _, n := range []string{base + ".1", base + ".2.0123456789abcdef"} {
			plantSegment(t, n, evil, testMAC(0))
			if err := os.Chown(filepath.Join(shm.Dir, n), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := startRtmd(t, "-shm", base, "-mac-capacity", "16")
	if os.Geteuid() == 0 && !strings.Contains(d.stderr.String(), "did not make") {
		t.Errorf("rtmd did not warn of the planted objects:\n%s", d.stderr)
	}
	// After rtmd started: the next generation under the old scheme, the
	// "newest" one, FIFOs and a link.
	plantSegment(t, base+".2", evil, testMAC(0), testMAC(1))
	plantSegment(t, base+".999", evil, testMAC(0), testMAC(1))
	for _, n := range []string{base + ".2.fifo", base + ".3"} {
		if err := syscall.Mkfifo(filepath.Join(shm.Dir, n), 0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(shm.Dir, n)) })
	}
	link := filepath.Join(shm.Dir, base+".4")
	os.Symlink(filepath.Join(shm.Dir, base+".999"), link)
	t.Cleanup(func() { os.Remove(link) })

	c := d.dial()
	const n = 100 // 16 records grow once, to 128: generation 2
	loadMACs(t, c, n, 1)
	if got := d.status().SHM; !strings.HasPrefix(got, base+".2.") || len(got) != len(base)+len(".2.")+16 {
		t.Errorf("segment after growth: %s, want %s.2.RANDOM", got, base)
	}
	// One at a time: generation 3.
	if _, err := c.AddMAC(context.Background(), client.MACEntry{MAC: testMAC(n), IP: patternIP(testMAC(n), 1)}); err != nil {
		t.Fatal(err)
	}
	for i := n + 1; i < 200; i++ {
		if _, err := c.AddMAC(context.Background(), client.MACEntry{MAC: testMAC(i), IP: patternIP(testMAC(i), 1)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1, n - 1, 199} {
		out, errs, code := d.rtm("", "mac", "get", testMAC(i).String())
		if want := patternIP(testMAC(i), 1).String() + "\n"; code != 0 || out != want {
			t.Errorf("rtm mac get %v = %q, %s (exit %d); want %q", testMAC(i), out, errs, code, want)
		}
	}
	m, _, _ := mirrorSyncs(t, d.socket)
	checkMACs(t, m, 200, 1)
}

// TestMACSegmentNotRtmds gives rtmd's segment to another uid, as an object
// planted by that user would be: `rtm mac get` and a Mirror refuse it at
// once, with an error that names it and says whose it is.
func TestMACSegmentNotRtmds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a segment to another uid; running as uid", os.Geteuid())
	}
	d := startRtmd(t)
	c := d.dial()
	loadMACs(t, c, 1, 1)
	name := d.status().SHM
	path := filepath.Join(shm.Dir, name)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	defer os.Chown(path, 0, 0)
	want := fmt.Sprintf("shm open %s: owned by uid 65534, want rtmd's uid 0", name)
	start := time.Now()
	if out, errs, code := d.rtm("", "mac", "get", testMAC(0).String()); code != 1 || out != "" || !strings.Contains(errs, want) {
		t.Errorf("rtm mac get on a segment of uid 65534 = %q, %q, exit %d; want an error with %q", out, errs, code, want)
	}
	m := &client.Mirror{Address: d.socket, NoReconnect: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Run(ctx); !errors.Is(err, shm.ErrUntrusted) || !strings.Contains(err.Error(), want) {
		t.Errorf("Mirror on a segment of uid 65534: %v; want an error with %q", err, want)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("refusing took %v", el)
	}
}

// TestMACSegmentTruncated truncates rtmd's segment while a Mirror reads
// it, and again before rtmd writes it: the reader's lookups say not found
// (no SIGBUS), rtmd keeps serving and moves the table to a new generation,
// and the Mirror converges on it.
func TestMACSegmentTruncated(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	const n = 1000 // 32 KiB of records: several pages
	loadMACs(t, c, n, 1)
	m, synced, errs := mirrorSyncs(t, d.socket)
	checkMACs(t, m, n, 1)

	// Under a reader: lookups fail, the mirror resyncs, and rtmd, asked
	// for a snapshot, moves to a new generation.
	var stop atomic.Bool
	var reads, misses atomic.Int64
	var wg sync.WaitGroup
	// Lookups before and after the truncation, never across it: under
	// the race detector an atomic load is done again in its C runtime,
	// where a fault that lands between the two loads cannot be recovered
	// (a build without it has no such window).
	var truncating sync.RWMutex
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			truncating.RLock()
			_, ok := m.LookupMAC(testMAC(i % n))
			truncating.RUnlock()
			if !ok {
				misses.Add(1)
			}
			reads.Add(1)
		}
	})
	old := d.status().SHM
	truncating.Lock()
	err := os.Truncate(filepath.Join(shm.Dir, old), 0)
	truncating.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if ip, ok := m.LookupMAC(testMAC(n - 1)); ok {
		t.Errorf("LookupMAC on a truncated segment = %v", ip)
	}
	select {
	case <-synced:
	case <-time.After(20 * time.Second):
		t.Fatalf("the mirror did not resync after the truncation\n%s", d.stderr)
	}
	stop.Store(true)
	wg.Wait()
	checkMACs(t, m, n, 1)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "truncated") {
			t.Errorf("the mirror's session ended with %v, want a truncated segment", err)
		}
	default:
		t.Error("the mirror reported no error")
	}
	t.Logf("%d lookups during the truncation, %d not found", reads.Load(), misses.Load())
	if cur := d.status().SHM; cur == old {
		t.Errorf("rtmd still on %s", cur)
	}

	// Under rtmd's next write.
	old = d.status().SHM
	if err := os.Truncate(filepath.Join(shm.Dir, old), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReplaceMAC(context.Background(), client.MACEntry{MAC: testMAC(7), IP: patternIP(testMAC(7), 2)}); err != nil {
		t.Fatalf("a write on a truncated segment: %v", err)
	}
	_, seq := d.table()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.WaitSeq(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if ip, ok := m.LookupMAC(testMAC(7)); !ok || ip != patternIP(testMAC(7), 2) {
		t.Errorf("LookupMAC after the move = %v, %v", ip, ok)
	}
	if ip, ok := m.LookupMAC(testMAC(8)); !ok || ip != patternIP(testMAC(8), 1) {
		t.Errorf("LookupMAC after the move = %v, %v", ip, ok)
	}
	if out := d.mustRtm("mac", "get", testMAC(7).String()); out != patternIP(testMAC(7), 2).String()+"\n" {
		t.Errorf("rtm mac get after the move = %q", out)
	}
	if cur := d.status().SHM; cur == old {
		t.Errorf("rtmd still on %s", cur)
	}
	if log := d.stderr.String(); !strings.Contains(log, "fault at offset") || !strings.Contains(log, "moved to a new generation") {
		t.Errorf("rtmd did not log the fault of its write and the move:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(shm.Dir, old)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rtmd left the truncated %s: %v", old, err)
	}
}
