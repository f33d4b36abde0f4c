package itest_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/shm"
)

// testMAC returns the i-th MAC of the tests.
func testMAC(i int) client.MAC { return client.MAC{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)} }

// patternIP returns the value the tests write for m, the n-th time: an
// IPv6 address holding m, n and a checksum, so that a reader can tell a
// value written for m from anything else.
func patternIP(m client.MAC, n uint64) netip.Addr {
	var a [16]byte
	copy(a[:6], m[:])
	binary.BigEndian.PutUint64(a[6:14], n)
	h := fnv.New32a()
	h.Write(a[:14])
	binary.BigEndian.PutUint16(a[14:], uint16(h.Sum32()))
	return netip.AddrFrom16(a)
}

// checkPattern reports whether ip is a value patternIP made for m.
func checkPattern(m client.MAC, ip netip.Addr) bool {
	a := ip.As16()
	if !ip.Is6() || [6]byte(a[:6]) != m {
		return false
	}
	return patternIP(m, binary.BigEndian.Uint64(a[6:14])) == ip
}

// macReaderMain is a client process that looks MACs up in shared memory
// while rtmd changes them: it reads RTM_READS values of the first RTM_MACS
// test MACs, checks each, and prints "reads N found F bad B ns_per_lookup X".
// On "dump" from stdin it prints its MAC table checked against the pattern.
func macReaderMain() {
	reads, _ := strconv.Atoi(os.Getenv("RTM_READS"))
	nmacs, _ := strconv.Atoi(os.Getenv("RTM_MACS"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &client.Mirror{Address: os.Getenv("RTM_SOCKET")}
	go m.Run(ctx)
	if err := m.WaitSeq(ctx, 0); err != nil {
		os.Exit(1)
	}
	fmt.Println("ready")
	found, bad := 0, 0
	start := time.Now()
	for i := 0; i < reads; i++ {
		k := testMAC(i % nmacs)
		ip, ok := m.LookupMAC(k)
		if !ok {
			continue
		}
		found++
		if !checkPattern(k, ip) {
			bad++
			if bad < 5 {
				fmt.Fprintf(os.Stderr, "bad value for %v: %v\n", k, ip)
			}
		}
	}
	el := time.Since(start)
	fmt.Printf("reads %d found %d bad %d ns_per_lookup %.1f\n", reads, found, bad, float64(el.Nanoseconds())/float64(reads))
	var line string
	for {
		if _, err := fmt.Scanln(&line); err != nil {
			return
		}
		wait, _ := strconv.ParseUint(strings.TrimPrefix(line, "dump@"), 10, 64)
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		m.WaitSeq(wctx, wait)
		wcancel()
		entries := m.MACEntries()
		badEntries := 0
		for _, e := range entries {
			if !checkPattern(e.MAC, e.IP) {
				badEntries++
			}
		}
		fmt.Printf("entries %d bad %d\n", len(entries), badEntries)
	}
}

func startMACReader(t *testing.T, socket string, reads, nmacs int) *subscriber {
	t.Helper()
	cmd := execHelper("macreader", socket, fmt.Sprintf("RTM_READS=%d", reads), fmt.Sprintf("RTM_MACS=%d", nmacs))
	s := startHelper(t, cmd)
	line, err := s.out.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("mac reader: %q, %v\n%s", line, err, s.stderr)
	}
	return s
}

// TestMACStress has rtmd change MAC entries continuously (replaces, and
// deletes that free slots for other MACs) while three client processes read
// them from shared memory, more than a million reads in all: every value
// read must be one that rtmd wrote for that MAC.
func TestMACStress(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	ctx := context.Background()
	const nmacs = 256
	var entries []client.MACEntry
	for i := range nmacs {
		entries = append(entries, client.MACEntry{MAC: testMAC(i), IP: patternIP(testMAC(i), 0)})
	}
	if _, _, err := c.LoadMACs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := uint64(1); !stop.Load(); n++ {
			for i := range entries {
				entries[i].IP = patternIP(entries[i].MAC, n)
			}
			if _, _, err := c.LoadMACs(ctx, entries); err != nil {
				t.Error(err)
				return
			}
			k := testMAC(int(n) % nmacs)
			if _, err := c.DeleteMAC(ctx, k); err != nil {
				t.Error(err)
				return
			}
			writes.Add(nmacs + 1)
		}
	})
	const readers, reads = 3, 400_000
	var subs []*subscriber
	for range readers {
		subs = append(subs, startMACReader(t, d.socket, reads, nmacs))
	}
	total := 0
	for i, s := range subs {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("reader %d: %v\n%s", i, err, s.stderr)
		}
		var r, found, bad int
		var ns float64
		fmt.Sscanf(line, "reads %d found %d bad %d ns_per_lookup %f", &r, &found, &bad, &ns)
		if bad != 0 || found < reads/2 {
			t.Errorf("reader %d: %s%s", i, line, s.stderr)
		}
		total += found
		t.Logf("reader %d: %s", i, strings.TrimSpace(line))
	}
	stop.Store(true)
	wg.Wait()
	if total < 1_000_000 {
		t.Errorf("%d checked reads, want at least a million", total)
	}
	t.Logf("%d checked reads while rtmd made %d changes", total, writes.Load())
}

// TestMACGrowth grows the segment from 16 records to 100,000 entries while
// readers run; at the end a reader holds every entry with its value.
func TestMACGrowth(t *testing.T) {
	d := startRtmd(t, "-mac-capacity", "16")
	const n = 100_000
	var subs []*subscriber
	for range 2 {
		subs = append(subs, startMACReader(t, d.socket, 2_000_000, n))
	}
	c := d.dial()
	for i := 0; i < n; i += 10_000 {
		var batch []client.MACEntry
		for j := i; j < i+10_000; j++ {
			batch = append(batch, client.MACEntry{MAC: testMAC(j), IP: patternIP(testMAC(j), 1)})
		}
		if _, _, err := c.LoadMACs(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	_, seq := d.table()
	for i, s := range subs {
		line, err := s.out.ReadString('\n')
		if err != nil || !strings.Contains(line, " bad 0 ") {
			t.Errorf("reader %d during growth: %q %v\n%s", i, line, err, s.stderr)
		}
		fmt.Fprintf(s.stdin, "dump@%d\n", seq)
		line, err = s.out.ReadString('\n')
		if err != nil || line != fmt.Sprintf("entries %d bad 0\n", n) {
			t.Errorf("reader %d after growth: %q %v\n%s", i, line, err, s.stderr)
		}
	}
	if !strings.Contains(d.stderr.String(), "capacity=131072") {
		t.Errorf("the segment did not grow to 131072 records:\n%s", d.stderr)
	}
}

// TestMACSegmentGoneOrBad checks that a client whose segment does not
// match its header reports a clear error and does not crash; that a
// segment removed under rtmd is replaced by a new generation when a client
// asks for it; and that rtmd keeps serving.
func TestMACSegmentGoneOrBad(t *testing.T) {
	d := startRtmd(t)
	c := d.dial()
	if _, err := c.AddMAC(context.Background(), client.MACEntry{MAC: testMAC(1), IP: netip.MustParseAddr("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	name := d.status().SHM
	path := filepath.Join(shm.Dir, name)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A header that is not rtm's.
	bad := append([]byte("NOTRTM!!"), good[8:]...)
	if err := os.WriteFile(path, bad, 0o640); err != nil {
		t.Fatal(err)
	}
	m := &client.Mirror{Address: d.socket, NoReconnect: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Run(ctx); !strings.Contains(fmt.Sprint(err), "not an rtm MAC segment") {
		t.Errorf("mirror on a bad header: %v", err)
	}
	os.WriteFile(path, good, 0o640)
	// The object gone: rtmd makes a new one when asked for the segment.
	os.Remove(path)
	if out := d.mustRtm("mac", "get", testMAC(1).String()); out != "10.0.0.1\n" {
		t.Errorf("rtm mac get after the segment was removed = %q", out)
	}
	if cur := d.status().SHM; cur == name {
		t.Errorf("rtmd still on the removed %s", cur)
	}
	// rtmd still serves.
	if _, err := c.ReplaceMAC(context.Background(), client.MACEntry{MAC: testMAC(1), IP: netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	if out := d.mustRtm("mac", "get", testMAC(1).String()); out != "10.0.0.2\n" {
		t.Errorf("rtm mac get = %q", out)
	}
}

// TestMACEventIP: a Mirror's MAC events carry the IP of that change, also
// when a later change in the same batch has already rewritten the record
// in the segment.
func TestMACEventIP(t *testing.T) {
	d := startRtmd(t)
	var mu sync.Mutex
	var got []string
	m := &client.Mirror{Address: d.socket, OnEvent: func(e client.Event) {
		if e.Object == client.MACs {
			mu.Lock()
			got = append(got, fmt.Sprintf("%v %v", e.Kind, e.IP))
			mu.Unlock()
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	if err := m.WaitSeq(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mac := testMAC(1).String()
	out, errs, code := d.rtm("mac add "+mac+" 10.0.0.1\nmac change "+mac+" 10.0.0.2\n", "-batch", "-")
	if code != 0 {
		t.Fatalf("rtm -batch: %s %s", out, errs)
	}
	if err := m.WaitSeq(ctx, 2); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := fmt.Sprintf("%v 10.0.0.1 %v 10.0.0.2", client.Add, client.Change); strings.Join(got, " ") != want {
		t.Errorf("events %q, want %q", got, want)
	}
}
