package itest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
	"golang.org/x/sys/unix"
)

// cpuTicks returns the user+system CPU time of process pid, in clock ticks
// (1/100 s).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// TestAdvCompatGarbageCPU: a compat client that writes a stream of bytes
// (which rtmd reads and ignores) must not cost rtmd a core: rtmd reads
// what it ignores 4 bytes per read(2), so 8 MiB are 2 million reads, about
// 2 s of CPU (4 s with -race); two such clients take both cores.
func TestAdvCompatGarbageCPU(t *testing.T) {
	for _, l := range compat.Layouts {
		t.Run(l.Name, func(t *testing.T) {
			sock := filepath.Join(shortDir(t), "c.sock")
			d := startRtmd(t, "-compat-socket", sock+":"+l.Name)
			nc, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if l.HasMACs() {
				nc.Write(binary.LittleEndian.AppendUint32(nil, 1))
			}
			go func() { // drain what rtmd sends
				b := make([]byte, 4096)
				for {
					if _, err := nc.Read(b); err != nil {
						return
					}
				}
			}()
			junk := bytes.Repeat([]byte{0xff}, 1<<16)
			before := cpuTicks(t, d.cmd.Process.Pid)
			start := time.Now()
			const total = 8 << 20
			// rtmd may read the bytes cheaply, stop reading them (the
			// write times out) or drop the client (the write fails).
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n := 0
			for ; n < total; n += len(junk) {
				if _, err := nc.Write(junk); err != nil {
					t.Logf("after %d bytes: %v", n, err)
					break
				}
			}
			used := cpuTicks(t, d.cmd.Process.Pid) - before
			t.Logf("%s: rtmd used %d ms of CPU to read %d MiB of ignored bytes (%v wall)", l.Name, used*10, n>>20, time.Since(start))
			if used > 50 {
				t.Errorf("rtmd used %d ms of CPU on %d MiB a compat client wrote, want under 0.5 s", used*10, n>>20)
			}
		})
	}
}

// advGHK is a ghk84 client reading in its own goroutine, one record per
// read, holding the invariant: no DELETE or UPDATE of what it was not
// sent a CREATE for, and every MAC's object readable at its CREATE.
type advGHK struct {
	t      *testing.T
	name   string
	nc     net.Conn
	pause  func() // before each read; nil for none
	mu     sync.Mutex
	routes map[netip.Prefix]string
	macs   map[mac.Addr]bool
	loop0  bool
	done   chan struct{}
}

func startAdvGHK(t *testing.T, name, socket string, pause func()) *advGHK {
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.Write(binary.LittleEndian.AppendUint32(nil, 1)) // not its pid: DELETEs on a flush
	g := &advGHK{t: t, name: name, nc: nc, pause: pause, routes: map[netip.Prefix]string{}, macs: map[mac.Addr]bool{}, done: make(chan struct{})}
	go g.run()
	return g
}

func (g *advGHK) run() {
	defer close(g.done)
	b := make([]byte, compat.GHK84.Size)
	for {
		if g.pause != nil {
			g.pause()
		}
		if _, err := io.ReadFull(g.nc, b); err != nil {
			return
		}
		rec, err := compat.GHK84.Decode(b)
		if err != nil {
			g.t.Errorf("%s: bad record %x: %v", g.name, b, err)
			return
		}
		g.mu.Lock()
		switch {
		case rec.Op == compat.None:
			if rec.Loop == 0 {
				g.loop0 = true
			}
		case rec.Table == compat.Routes:
			_, had := g.routes[rec.Dst]
			switch {
			case rec.Op == compat.Create && had, rec.Op != compat.Create && !had:
				g.t.Errorf("%s: op %d of %v, which it had: %v", g.name, rec.Op, rec.Dst, had)
			}
			if rec.Op == compat.Delete {
				delete(g.routes, rec.Dst)
			} else {
				g.routes[rec.Dst] = classicLine(rec.Dst, rec.Gateway, rec.Dev)
			}
		default:
			had := g.macs[rec.MAC]
			switch {
			case rec.Op == compat.Update:
				g.t.Errorf("%s: UPDATE of MAC %v", g.name, rec.MAC)
			case rec.Op == compat.Create && had, rec.Op == compat.Delete && !had:
				g.t.Errorf("%s: op %d of MAC %v, which it had: %v", g.name, rec.Op, rec.MAC, had)
			}
			if rec.Op == compat.Delete {
				delete(g.macs, rec.MAC)
			} else {
				g.macs[rec.MAC] = true
				if ip, err := macObject(client.MAC(rec.MAC)); err != nil || !netip.MustParseAddr(cmp.Or(ip, "0.0.0.0")).Is4() || ip == "" {
					g.t.Errorf("%s: CREATE of MAC %v: its object holds %q, %v", g.name, rec.MAC, ip, err)
				}
			}
		}
		g.mu.Unlock()
	}
}

// state returns the client's routes and MACs, sorted.
func (g *advGHK) state() (routes, macs []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.routes {
		routes = append(routes, l)
	}
	for m := range g.macs {
		macs = append(macs, m.String())
	}
	sort.Strings(routes)
	sort.Strings(macs)
	return routes, macs
}

// TestAdvGHK84Churn: a seeded random sequence of route and MAC changes
// (MACs going IPv4, IPv6, deleted, re-added; flushes) with a small
// -backlog, read by a prompt ghk84 client, a slow one (resent the table
// again and again) and one that joins midway. Each holds the invariant
// throughout and ends with rtmd's IPv4 routes and IPv4 MAC entries; every
// IPv4 MAC's object holds its IP and every other MAC's object goes.
func TestAdvGHK84Churn(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84", "-backlog", "2048")
	pool := randomMACs(40)
	rng := rand.New(rand.NewPCG(12, 84))
	slowReads := 0
	readers := []*advGHK{
		startAdvGHK(t, "prompt", sock, nil),
		startAdvGHK(t, "slow", sock, func() {
			if slowReads++; slowReads%50 == 0 {
				time.Sleep(300 * time.Millisecond)
			}
		}),
	}
	c := d.dial()
	ctx := context.Background()
	for i := range 4000 {
		switch i {
		case 1500:
			readers = append(readers, startAdvGHK(t, "late", sock, nil))
		case 2000, 3000:
			c.Flush(ctx)
		}
		m := pool[rng.IntN(len(pool))]
		switch rng.IntN(10) {
		case 0, 1:
			r := randRoute(rng)
			c.Replace(ctx, r)
		case 2:
			r := randRoute(rng)
			c.Delete(ctx, r.Table, r.Dst)
		case 3, 4, 5:
			c.ReplaceMAC(ctx, client.MACEntry{MAC: m, IP: netip.AddrFrom4([4]byte{10, 9, byte(rng.IntN(4)), byte(rng.IntN(250) + 1)})})
		case 6:
			c.ReplaceMAC(ctx, client.MACEntry{MAC: m, IP: netip.MustParseAddr("2001:db8::" + strconv.Itoa(rng.IntN(9)+1))})
		case 7, 8:
			c.DeleteMAC(ctx, m)
		case 9:
			c.AddMAC(ctx, client.MACEntry{MAC: m, IP: netip.MustParseAddr("10.8.0.1"), Dev: "eth" + strconv.Itoa(rng.IntN(3))})
		}
	}
	var wantRoutes []string
	if _, err := d.dial().Snapshot(ctx, func(r client.Route) {
		if r.Table == client.TableMain && r.Type == client.Unicast && r.Dst.Addr().Is4() &&
			len(r.NextHops) == 1 && r.NextHops[0].Gateway.Is4() && r.NextHops[0].Dev != "" {
			wantRoutes = append(wantRoutes, classicLine(r.Dst, r.NextHops[0].Gateway, r.NextHops[0].Dev))
		}
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(wantRoutes)
	entries, _, err := d.dial().MACSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantMACs []string
	ips := map[client.MAC]string{}
	for _, e := range entries {
		if e.IP.Is4() {
			wantMACs = append(wantMACs, e.MAC.String())
			ips[e.MAC] = e.IP.String()
		}
	}
	sort.Strings(wantMACs)
	for _, g := range readers {
		deadline := time.Now().Add(30 * time.Second)
		for {
			routes, macs := g.state()
			if slices.Equal(routes, wantRoutes) && slices.Equal(macs, wantMACs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d routes, %d MACs; want %d, %d\nroutes: %s\nMACs: %s", g.name, len(routes), len(macs), len(wantRoutes), len(wantMACs),
					diff(routes, wantRoutes), diff(macs, wantMACs))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	resyncs := 0
	for _, cl := range compatClients(t, d) {
		resyncs += cl.Resyncs
	}
	if resyncs == 0 {
		t.Error("no compat client was resent the table: the test does not test that")
	}
	t.Logf("%d resyncs", resyncs)
	for _, m := range pool {
		want, ok := ips[m]
		eventually(t, "the object of "+m.String()+" to hold "+want, func() bool {
			ip, err := macObject(m)
			if !ok {
				return errors.Is(err, os.ErrNotExist)
			}
			return err == nil && ip == want
		})
	}
	if len(wantRoutes) == 0 || len(wantMACs) == 0 {
		t.Errorf("the sequence left %d routes and %d MACs to compare", len(wantRoutes), len(wantMACs))
	}
	d.stop()
	for _, g := range readers {
		<-g.done
		if !g.loop0 {
			t.Errorf("%s: no loop-0 record as rtmd stopped", g.name)
		}
	}
	if left := withObjects(pool...); len(left) > 0 {
		t.Errorf("objects of %v after rtmd stopped", left)
	}
}

// TestAdvGHK84HoarderHoldsObjects: a ghk84 client that reads everything
// but the last byte rtmd wrote never fills its socket, so no write to it
// times out, and it never reads its last DELETE: the objects of MACs
// deleted since stay in /dev/shm for as long as it stays connected. They
// are bounded: past 4096 such objects (server.pendingMax) it is dropped,
// and they go.
func TestAdvGHK84HoarderHoldsObjects(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(binary.LittleEndian.AppendUint32(nil, 1))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // read all but the last byte there is
		raw, _ := nc.(*net.UnixConn).SyscallConn()
		b := make([]byte, 1<<16)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n := 0
			raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
			if n > 1 {
				if _, err := io.ReadFull(nc, b[:min(n-1, len(b))]); err != nil {
					return
				}
			}
		}
	}()
	eventually(t, "the client to be served", func() bool { return len(compatClients(t, d)) == 1 })
	macs := randomMACs(4096 + 100)
	var adds, dels strings.Builder
	for _, m := range macs {
		fmt.Fprintf(&adds, "mac add %v 10.0.0.1\n", m)
		fmt.Fprintf(&dels, "mac del %v\n", m)
	}
	for _, batch := range []string{adds.String(), dels.String()} {
		if _, errs, code := d.rtm(batch, "-batch", "-"); code != 0 {
			t.Fatalf("rtm -batch: exit %d: %s", code, errs)
		}
	}
	eventually(t, "the hoarding client to be dropped", func() bool { return len(compatClients(t, d)) == 0 })
	eventually(t, "the deleted MACs' objects to go", func() bool { return len(withObjects(macs...)) == 0 })
}

// TestAdvGHK84HoarderUnderBound: below the bound the hoarder keeps the
// objects of the MACs it was sent and has not read the DELETE of, and it
// is served on.
func TestAdvGHK84HoarderUnderBound(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	g := dialGHK(t, sock, 1)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	g.expect(compat.None, compat.MACs, compat.MACsDone)
	macs := randomMACs(10)
	for _, m := range macs {
		d.mustRtm("mac", "add", m.String(), "10.0.0.1")
	}
	for _, m := range macs {
		d.mustRtm("mac", "del", m.String())
	}
	time.Sleep(100 * time.Millisecond) // sweeps run every 20 ms
	for _, m := range macs {
		if _, err := macObject(m); err != nil {
			t.Fatalf("object of %v, whose DELETE the client has not read: %v", m, err)
		}
	}
	for range 2 * len(macs) {
		g.next()
	}
	eventually(t, "the objects to go once read", func() bool { return len(withObjects(macs...)) == 0 })
	if len(compatClients(t, d)) != 1 {
		t.Error("the client was dropped")
	}
}

// TestAdvGHK84PlantedNames: what others put under a MAC's name in /dev/shm
// before rtmd writes it. A symlink is replaced, never written through (its
// target keeps its bytes, and outlives rtmd); a directory makes that MAC
// absent for ghk84 clients (no CREATE), and rtmd leaves it alone, also as
// it stops.
func TestAdvGHK84PlantedNames(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	macs := randomMACs(3)
	target := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(target, []byte("precious bytes, not an IP"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(shm.Dir, compat.ObjectFile(mac.Addr(macs[0])))
	dir := filepath.Join(shm.Dir, compat.ObjectFile(mac.Addr(macs[1])))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	for i, m := range macs {
		d.mustRtm("mac", "add", m.String(), "10.0.0."+strconv.Itoa(i+1))
	}
	g := dialGHK(t, sock, 1)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	g.expect(compat.Create, compat.MACs, compat.Wait)
	g.expect(compat.Create, compat.MACs, compat.Wait)
	g.expect(compat.None, compat.MACs, compat.MACsDone)
	if _, ok := g.macs[mac.Addr(macs[1])]; ok || len(g.macs) != 2 {
		t.Errorf("the client got %v; want all but %v, whose name is a directory", g.macs, macs[1])
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the planted symlink's name after the MAC's add: %v, %v; want rtmd's object", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious bytes, not an IP" {
		t.Errorf("the symlink's target now holds %q", b)
	}
	d.stop()
	if b, _ := os.ReadFile(target); string(b) != "precious bytes, not an IP" {
		t.Errorf("after rtmd stopped, the symlink's target holds %q", b)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the planted directory after rtmd stopped: %v", err)
	}
	if left := withObjects(macs[0], macs[2]); len(left) > 0 {
		t.Errorf("objects of %v after rtmd stopped", left)
	}
}

// TestAdvGHK84StopWhileStuck: rtmd stops promptly and leaves no object
// behind while a registered ghk84 client that does not read is held in a
// flush's wait, another has not sent its pid, and a course client's socket
// is full; before that, a stuck client is not signalled at a flush but
// sent DELETEs, and the flushed MAC's object stays until it goes.
func TestAdvGHK84StopWhileStuck(t *testing.T) {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGUSR1) // the test is the registered client
	defer signal.Stop(sig)
	dir := shortDir(t)
	ghk, course := filepath.Join(dir, "ghk.sock"), filepath.Join(dir, "course.sock")
	d := startRtmd(t, "-compat-socket", ghk+":ghk84", "-compat-socket", course+":course", "-write-timeout", "2s")
	macs := randomMACs(2)
	d.mustRtm("mac", "add", macs[0].String(), "10.0.0.1")
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
	stuck := dialGHK(t, ghk, int32(os.Getpid())) // registered; never reads
	eventually(t, "the stuck client to be registered", func() bool {
		cl := compatClients(t, d)
		return len(cl) == 1 && cl[0].Registered
	})
	d.mustRtm("flush", "all")
	// It is not signalled (it has not read what came before) but sent
	// DELETEs, and it keeps the object of the MAC it has not read the
	// DELETE of until it goes.
	eventually(t, "rtmd to give up on signalling", func() bool {
		return strings.Contains(d.stderr.String(), "not signalled for a flush")
	})
	if _, err := macObject(macs[0]); err != nil {
		t.Errorf("the object of a MAC whose DELETE the client has not read: %v", err)
	}
	stuck.nc.Close()
	eventually(t, "the flushed MAC's object to go", func() bool { return len(withObjects(macs[0])) == 0 })
	select {
	case <-sig:
		t.Error("a client that read nothing was signalled")
	default:
	}

	stuck = dialGHK(t, ghk, int32(os.Getpid()))
	d.mustRtm("mac", "add", macs[1].String(), "10.0.0.2")
	eventually(t, "the stuck client to be registered", func() bool {
		cl := compatClients(t, d)
		return len(cl) == 1 && cl[0].Registered
	})
	d.mustRtm("flush", "all") // its writer now waits for it to read
	mute, err := net.Dial("unix", ghk)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	full, err := net.Dial("unix", course)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	c := d.dial()
	for i := range 4000 { // more than the course client's socket holds
		c.Add(context.Background(), client.Route{Table: client.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i/256), byte(i), 0}), 24),
			Type: client.Unicast, NextHops: []client.NextHop{{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "eth0"}}})
	}
	d.stop() // fails the test if rtmd takes over 10 s or exits non-zero
	if left := withObjects(macs...); len(left) > 0 {
		t.Errorf("objects of %v after rtmd stopped", left)
	}
}

// TestAdvGHK84ConnFlood: past -max-compat-conns, each ghk84 connection is
// told loop 0 and closed at once, without sending its pid; those admitted
// keep being served, and a slot freed is taken again.
func TestAdvGHK84ConnFlood(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84", "-max-compat-conns", "2")
	a, b := dialGHK(t, sock, 1), dialGHK(t, sock, 1)
	for _, g := range []*ghkReader{a, b} {
		g.expect(compat.None, compat.Routes, compat.RoutesDone)
		g.expect(compat.None, compat.MACs, compat.MACsDone)
	}
	for i := range 200 {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		rec := make([]byte, compat.GHK84.Size)
		_, err = io.ReadFull(nc, rec)
		r, derr := compat.GHK84.Decode(rec)
		if err != nil || derr != nil || r.Op != compat.None || r.Loop != 0 {
			t.Fatalf("refused connection %d: %+v, %v, %v; want NONE with loop 0", i, r, err, derr)
		}
		if n, err := nc.Read(rec); !errors.Is(err, io.EOF) {
			t.Fatalf("refused connection %d after its record: %d bytes, %v; want EOF", i, n, err)
		}
		nc.Close()
	}
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
	a.expect(compat.Create, compat.Routes, compat.RoutesDone)
	b.expect(compat.Create, compat.Routes, compat.RoutesDone)
	b.nc.Write(binary.LittleEndian.AppendUint32(nil, 1)) // goodbye
	eventually(t, "the slot to be freed", func() bool { return len(compatClients(t, d)) == 1 })
	c := dialGHK(t, sock, 1)
	c.expect(compat.Create, compat.Routes, compat.Wait)
}

// TestAdvGHK84MuteClientPinsObjects: a ghk84 client that never reads (not
// even the two markers of its empty table) is never counted as having
// read anything, so the objects of MACs added and deleted later stay
// while it is connected, though no client was ever sent those MACs and
// nothing is written to it that could time out.
func TestAdvGHK84MuteClientPinsObjects(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84", "-write-timeout", "1s")
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(binary.LittleEndian.AppendUint32(nil, 1))
	eventually(t, "the client to be served", func() bool { return len(compatClients(t, d)) == 1 })
	macs := randomMACs(20)
	var batch strings.Builder
	for _, m := range macs {
		fmt.Fprintf(&batch, "mac add %v 10.0.0.1\nmac del %v\n", m, m)
	}
	if _, errs, code := d.rtm(batch.String(), "-batch", "-"); code != 0 {
		t.Fatalf("rtm -batch: exit %d: %s", code, errs)
	}
	time.Sleep(3 * time.Second) // three write timeouts
	if left := len(withObjects(macs...)); left > 0 {
		t.Errorf("3 s after 20 MACs were added and deleted in one batch (sent to no client), with -write-timeout 1s: %d of their objects are still in %s, held by a ghk84 client that reads nothing (still connected: %d)",
			left, shm.Dir, len(compatClients(t, d)))
	}
}
