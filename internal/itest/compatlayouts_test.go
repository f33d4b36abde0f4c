package itest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
)

// A compatClient is a classic client under test: a Go reader or a C
// client.
type compatClient interface {
	// dump returns the client's table once it has read everything in its
	// socket: routes as classicLine, then for ghk84 "MAC IP" lines with
	// the IP read from the MAC's object now.
	dump(t *testing.T) []string
	// final returns the table the client holds when rtmd has closed the
	// connection (a MAC whose object is gone has the IP "gone").
	final(t *testing.T) []string
	String() string
}

// goReader is a classic client in Go. It checks every record with the
// layout's decoder, that no DELETE or UPDATE names an entry it was not
// sent, and for ghk84 the markers, the loop field, the flush signal and
// the MAC objects.
type goReader struct {
	t    *testing.T
	l    *compat.Layout
	nc   *net.UnixConn
	reqs chan chan []string
	done chan []string

	routes map[netip.Prefix]string
	macs   map[mac.Addr]bool

	// ghk84
	sigc     chan os.Signal
	phase    int // 0 initial routes, 1 initial MACs, 2 changes
	signals  int // SIGUSR1 seen
	flushes  int // flush markers (NONE, routes, synchronized 1) after the initial ones
	sawLoop0 bool
}

func (g *goReader) String() string { return "Go " + g.l.Name + " reader" }

// startGoReader connects a Go reader to socket; a ghk84 reader sends the
// test process's pid, so rtmd signals it on a flush.
func startGoReader(t *testing.T, l *compat.Layout, socket string) *goReader {
	t.Helper()
	g := &goReader{t: t, l: l, reqs: make(chan chan []string), done: make(chan []string, 1),
		routes: map[netip.Prefix]string{}, macs: map[mac.Addr]bool{}}
	if l.HasMACs() {
		g.sigc = make(chan os.Signal, 16)
		signal.Notify(g.sigc, syscall.SIGUSR1)
		t.Cleanup(func() { signal.Stop(g.sigc) })
	}
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	g.nc = nc.(*net.UnixConn)
	t.Cleanup(func() { g.nc.Close() })
	if l.HasMACs() {
		if _, err := g.nc.Write(binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid()))); err != nil {
			t.Fatalf("%v: write pid: %v", g, err)
		}
	}
	go g.run()
	return g
}

// inq returns the bytes waiting in the socket.
func (g *goReader) inq() int {
	rc, err := g.nc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

func (g *goReader) run() {
	rec := make([]byte, g.l.Size)
	off := 0
	var pending []chan []string
	defer func() { g.done <- g.lines(true) }()
	for {
		g.checkSignal()
		if len(pending) > 0 && off == 0 && g.inq() == 0 {
			for _, req := range pending {
				req <- g.lines(false)
			}
			pending = nil
		}
		select {
		case req := <-g.reqs:
			pending = append(pending, req)
			continue
		default:
		}
		g.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := g.nc.Read(rec[off:])
		off += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			if off != 0 {
				g.t.Errorf("%v: the connection ended %d bytes into a record", g, off)
			}
			return
		}
		if off < len(rec) {
			continue
		}
		off = 0
		if g.sawLoop0 {
			g.t.Errorf("%v: a record after loop 0: %x", g, rec)
			return
		}
		r, err := g.l.Decode(rec)
		if err != nil {
			g.t.Errorf("%v: %v in %x", g, err, rec)
			return
		}
		if !g.apply(r) {
			return
		}
	}
}

// checkSignal empties the tables if rtmd signalled a flush, as the C
// clients do before each read.
func (g *goReader) checkSignal() {
	if g.sigc == nil {
		return
	}
	select {
	case <-g.sigc:
		g.signals++
		clear(g.routes)
		clear(g.macs)
	default:
	}
}

// apply applies r, reporting whether reading goes on.
func (g *goReader) apply(r compat.Record) bool {
	t := g.t
	if g.l.HasMACs() {
		if r.Loop == 0 {
			g.sawLoop0 = true
			return true
		}
		switch {
		case g.phase == 0 && r.Op == compat.None && r.Table == compat.Routes && r.Sync == compat.RoutesDone:
			g.phase = 1
			return true
		case g.phase == 1 && r.Op == compat.None && r.Table == compat.MACs && r.Sync == compat.MACsDone:
			g.phase = 2
			return true
		case g.phase < 2 && (r.Op != compat.Create || r.Table != uint32(g.phase) || r.Sync != compat.Wait):
			t.Errorf("%v: op %d table %d synchronized %d before the %s marker, want CREATEs of table %d",
				g, r.Op, r.Table, r.Sync, []string{"routes", "MACs"}[g.phase], g.phase)
			return false
		case r.Op == compat.None && r.Table == compat.Routes && r.Sync == compat.RoutesDone:
			// A flush: the signal came first.
			if g.signals <= g.flushes {
				select {
				case <-g.sigc:
					g.signals++
					clear(g.routes)
					clear(g.macs)
				case <-time.After(10 * time.Second):
					t.Errorf("%v: a flush marker without SIGUSR1 (signals %d, flushes %d)", g, g.signals, g.flushes)
				}
			}
			g.flushes++
			return true
		case r.Op == compat.None:
			return true
		}
	}
	if r.Table == compat.MACs {
		had := g.macs[r.MAC]
		switch r.Op {
		case compat.Create:
			if had {
				t.Errorf("%v: CREATE of known MAC %v", g, r.MAC)
			}
			if _, err := readMACObject(r.MAC); err != nil {
				t.Errorf("%v: CREATE of MAC %v: %v", g, r.MAC, err)
			}
			g.macs[r.MAC] = true
		case compat.Update:
			t.Errorf("%v: UPDATE of MAC %v; a MAC's IP changes in its object, with no record", g, r.MAC)
		case compat.Delete:
			if !had {
				t.Errorf("%v: DELETE of unknown MAC %v", g, r.MAC)
			}
			delete(g.macs, r.MAC)
		}
		return true
	}
	_, had := g.routes[r.Dst]
	switch r.Op {
	case compat.Create, compat.Update:
		if r.Op == compat.Update && !had {
			t.Errorf("%v: UPDATE of unknown %v", g, r.Dst)
		}
		if r.Op == compat.Create && had {
			t.Errorf("%v: CREATE of known %v", g, r.Dst)
		}
		g.routes[r.Dst] = classicLine(r.Dst, r.Gateway, r.Dev)
	case compat.Delete:
		if !had {
			t.Errorf("%v: DELETE of unknown %v", g, r.Dst)
		}
		delete(g.routes, r.Dst)
	}
	return true
}

// lines returns the table; at the end a MAC whose object is gone has the
// IP "gone".
func (g *goReader) lines(end bool) []string {
	var lines []string
	for _, l := range g.routes {
		lines = append(lines, l)
	}
	for m := range g.macs {
		ip, err := readMACObject(m)
		switch {
		case err == nil:
			lines = append(lines, fmt.Sprint(m, " ", ip))
		case end:
			lines = append(lines, fmt.Sprint(m, " gone"))
		default:
			g.t.Errorf("%v: dump: MAC %v: %v", g, m, err)
		}
	}
	slices.Sort(lines)
	return lines
}

func (g *goReader) dump(t *testing.T) []string {
	req := make(chan []string, 1)
	select {
	case g.reqs <- req:
	case lines := <-g.done:
		g.done <- lines
		t.Fatalf("%v ended before the dump", g)
	}
	select {
	case lines := <-req:
		return lines
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: no dump in 30s", g)
		return nil
	}
}

func (g *goReader) final(t *testing.T) []string {
	select {
	case lines := <-g.done:
		if g.l.HasMACs() && !g.sawLoop0 {
			t.Errorf("%v: the connection ended without a loop 0 record", g)
		}
		return lines
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: still reading 30s after rtmd stopped", g)
		return nil
	}
}

// readMACObject returns the IP address in m's object, which must hold it
// as NUL-terminated IPv4 text in its first 16 bytes.
func readMACObject(m mac.Addr) (netip.Addr, error) {
	b, err := os.ReadFile(filepath.Join("/dev/shm", compat.ObjectFile(m)))
	if err != nil {
		return netip.Addr{}, err
	}
	if len(b) < compat.ObjectSize {
		return netip.Addr{}, fmt.Errorf("object %s: %d bytes, want %d", compat.MACObject(m), len(b), compat.ObjectSize)
	}
	s, _, ok := strings.Cut(string(b[:compat.ObjectSize]), "\x00")
	ip, err := netip.ParseAddr(s)
	if !ok || err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("object %s: %q is not IPv4 text", compat.MACObject(m), b[:compat.ObjectSize])
	}
	return ip, nil
}

// cClient is a C client of one layout (testdata/compat_LAYOUT.c).
type cClient struct {
	name string
	*subscriber
}

func (c *cClient) String() string { return c.name }

// buildCClients compiles the C clients into dir, returning their paths by
// layout, or nil (with the reason logged) if there is no gcc.
func buildCClients(t *testing.T) map[*compat.Layout]string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Logf("gcc not found (%v): the C clients are skipped; the Go readers run", err)
		return nil
	}
	bins := map[*compat.Layout]string{}
	dir := t.TempDir()
	for _, l := range compat.Layouts {
		bins[l] = filepath.Join(dir, "compat_"+l.Name)
		args := []string{"-Wall", "-Werror", "-O", "-o", bins[l]}
		switch l {
		case compat.Course:
			args = append(args, "testdata/compat72.c")
		case compat.U16:
			args = append(args, "-DU16", "testdata/compat72.c")
		default:
			args = append(args, "testdata/compat_"+l.Name+".c")
		}
		src := args[len(args)-1]
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", src, err, out)
		}
	}
	return bins
}

// startCClient starts the C client bin on socket and waits until it is
// connected.
func startCClient(t *testing.T, name, bin, socket string) *cClient {
	t.Helper()
	c := &cClient{name: name, subscriber: startHelper(t, exec.Command(bin, socket))}
	if l, err := c.out.ReadString('\n'); l != "connected\n" {
		t.Fatalf("%v: %q, %v\n%s", c, l, err, c.stderr)
	}
	return c
}

// readTable reads lines up to "end".
func (c *cClient) readTable(t *testing.T) []string {
	t.Helper()
	var lines []string
	for {
		l, err := c.out.ReadString('\n')
		if err != nil {
			t.Fatalf("%v: %v after %d lines\n%s", c, err, len(lines), c.stderr)
		}
		l = strings.TrimSuffix(l, "\n")
		if l == "end" {
			break
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	if s := c.stderr.String(); s != "" {
		t.Errorf("%v: %s", c, s)
	}
	return lines
}

func (c *cClient) dump(t *testing.T) []string {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "dump\n"); err != nil {
		t.Fatalf("%v: %v\n%s", c, err, c.stderr)
	}
	return c.readTable(t)
}

func (c *cClient) final(t *testing.T) []string {
	t.Helper()
	lines := c.readTable(t)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%v: %v\n%s", c, err, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%v did not exit after printing its table", c)
	}
	return lines
}

// compatWant returns what the classic clients should hold of rtmd's
// tables: the routes the record holds, and the MAC entries with IPv4
// addresses as "MAC IP", and the sequence number.
func compatWant(t *testing.T, d *daemon) (routes, macs []string, seq uint64) {
	t.Helper()
	c := d.dial()
	defer c.Close()
	ctx := context.Background()
	seq, err := c.Snapshot(ctx, func(r client.Route) {
		if r.Table == client.TableMain && r.Type == client.Unicast && r.Dst.Addr().Is4() &&
			len(r.NextHops) == 1 && r.NextHops[0].Gateway.Is4() && r.NextHops[0].Dev != "" {
			routes = append(routes, classicLine(r.Dst, r.NextHops[0].Gateway, r.NextHops[0].Dev))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	mc := d.dial() // a connection takes one snapshot
	defer mc.Close()
	entries, seq2, err := mc.MACSnapshot(ctx)
	if err != nil || seq2 != seq {
		t.Fatalf("MAC snapshot: %v (seq %d, routes at %d)", err, seq2, seq)
	}
	for _, e := range entries {
		if e.IP.Is4() {
			macs = append(macs, fmt.Sprint(e.MAC, " ", e.IP))
		}
	}
	slices.Sort(routes)
	slices.Sort(macs)
	return routes, macs, seq
}

// waitCompatDelivered waits until rtmd has written everything up to seq
// to its n compat clients.
func waitCompatDelivered(t *testing.T, d *daemon, n int, seq uint64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		list := compatClients(t, d)
		behind := 0
		for _, cl := range list {
			if cl.Delivered < seq {
				behind++
			}
		}
		if behind == 0 && len(list) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("compat clients: %d connected, want %d; %d behind seq %d: %+v", len(list), n, behind, seq, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resyncsOf returns the resyncs of the compat client with pid.
func resyncsOf(t *testing.T, d *daemon, pid int) int {
	t.Helper()
	for _, cl := range compatClients(t, d) {
		if int(cl.PID) == pid {
			return cl.Resyncs
		}
	}
	t.Fatalf("no compat client with pid %d", pid)
	return 0
}

// TestCompatLayouts serves the three record layouts at once, one compat
// socket each, to a Go reader and a C client of each layout from the
// start and a C client of each joining midway, through a seeded random
// sequence of route and MAC adds, changes and deletes, a flush, and a
// burst that two stopped C clients fall behind on (a resync). At the end
// every client holds exactly rtmd's IPv4 route table, and the ghk84
// clients its MAC entries with IPv4 addresses, the IPs read through the
// MACs' objects; once rtmd has stopped, no object is left.
func TestCompatLayouts(t *testing.T) {
	bins := buildCClients(t)
	dir := shortDir(t)
	sockets := map[*compat.Layout]string{}
	args := []string{"-backlog", "32768"}
	for _, l := range compat.Layouts {
		sockets[l] = filepath.Join(dir, l.Name+".sock")
		args = append(args, "-compat-socket", sockets[l]+":"+l.Name)
	}
	d := startRtmd(t, args...)

	var clients []compatClient
	layoutOf := map[compatClient]*compat.Layout{}
	add := func(c compatClient, l *compat.Layout) {
		clients = append(clients, c)
		layoutOf[c] = l
	}
	startC := func(l *compat.Layout, when string) *cClient {
		if bins == nil {
			return nil
		}
		c := startCClient(t, fmt.Sprintf("C %s client (%s)", l.Name, when), bins[l], sockets[l])
		add(c, l)
		return c
	}
	for _, l := range compat.Layouts {
		add(startGoReader(t, l, sockets[l]), l)
	}
	var stopped []*cClient // those the resync burst stops
	for _, l := range compat.Layouts {
		if c := startC(l, "from the start"); c != nil && l != compat.U16 {
			stopped = append(stopped, c)
		}
	}

	macs := randomMACs(40)
	t.Cleanup(func() {
		for _, m := range macs {
			os.Remove(filepath.Join("/dev/shm", compat.ObjectFile(m)))
		}
	})
	randMACEntry := func(rng *rand.Rand) client.MACEntry {
		e := client.MACEntry{MAC: macs[rng.IntN(len(macs))], IP: netip.AddrFrom4([4]byte{10, 200, byte(rng.IntN(4)), byte(1 + rng.IntN(250))})}
		if rng.IntN(5) == 0 {
			e.IP = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + rng.IntN(250))})
		}
		return e
	}
	c := d.dial()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 84))
	step := func() {
		r := randRoute(rng)
		switch rng.IntN(9) {
		case 0:
			c.Add(ctx, r)
		case 1:
			c.Change(ctx, r)
		case 2, 3:
			c.Replace(ctx, r)
		case 4:
			c.Delete(ctx, r.Table, r.Dst)
		case 5:
			c.AddMAC(ctx, randMACEntry(rng))
		case 6:
			c.ReplaceMAC(ctx, randMACEntry(rng))
		case 7:
			c.ChangeMAC(ctx, randMACEntry(rng))
		case 8:
			c.DeleteMAC(ctx, macs[rng.IntN(len(macs))])
		}
	}
	for i := range 3000 {
		switch i {
		case 1000:
			for _, l := range compat.Layouts {
				startC(l, "from midway")
			}
		case 2000:
			d.mustRtm("flush", "all")
		}
		step()
	}

	// The resync: two C clients stop while a burst goes through, more
	// than their sockets and the 32 KiB backlog hold.
	before := map[*cClient]int{}
	for _, sc := range stopped {
		before[sc] = resyncsOf(t, d, sc.cmd.Process.Pid)
		sc.cmd.Process.Signal(syscall.SIGSTOP)
	}
	for i := range 2000 {
		r := client.Route{Table: client.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i)}), 32),
			NextHops: []client.NextHop{{Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + rng.IntN(3))}), Dev: "eth0"}}}
		if _, err := c.Replace(ctx, r); err != nil {
			t.Fatalf("burst: replace %v: %v", r, err)
		}
		if i%4 == 0 {
			c.ReplaceMAC(ctx, randMACEntry(rng))
		}
	}
	for _, sc := range stopped {
		sc.cmd.Process.Signal(syscall.SIGCONT)
	}
	for i := 0; i < 2000; i += 3 {
		c.Delete(ctx, client.TableMain, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i)}), 32))
	}
	for range 300 {
		step()
	}

	wantRoutes, wantMACs, seq := compatWant(t, d)
	waitCompatDelivered(t, d, len(clients), seq)
	for _, sc := range stopped {
		got := resyncsOf(t, d, sc.cmd.Process.Pid)
		if got <= before[sc] {
			t.Errorf("%v: resyncs %d after the burst, want more than %d", sc, got, before[sc])
		}
		t.Logf("%v: resyncs %d, %d before the burst", sc, got, before[sc])
	}
	wantAll := slices.Sorted(slices.Values(append(slices.Clone(wantRoutes), wantMACs...)))
	for _, cl := range clients {
		want := wantRoutes
		if layoutOf[cl].HasMACs() {
			want = wantAll
		}
		if got := cl.dump(t); !slices.Equal(got, want) {
			t.Errorf("%v: %d entries, want rtmd's %d\n%s", cl, len(got), len(want), diff(got, want))
		}
	}

	d.stop()
	var wantMACNames []string
	for _, l := range wantMACs {
		m, _, _ := strings.Cut(l, " ")
		wantMACNames = append(wantMACNames, m)
	}
	for _, cl := range clients {
		var routes, macNames []string
		for _, l := range cl.final(t) {
			if strings.Contains(l, " via ") {
				routes = append(routes, l)
			} else {
				m, _, _ := strings.Cut(l, " ")
				macNames = append(macNames, m)
			}
		}
		if !slices.Equal(routes, wantRoutes) {
			t.Errorf("%v at the end: %d routes, want rtmd's %d\n%s", cl, len(routes), len(wantRoutes), diff(routes, wantRoutes))
		}
		if layoutOf[cl].HasMACs() && !slices.Equal(macNames, wantMACNames) {
			t.Errorf("%v at the end: MACs %v, want %v", cl, macNames, wantMACNames)
		}
	}
	for _, cl := range clients {
		if g, ok := cl.(*goReader); ok && g.l.HasMACs() {
			if g.flushes != 1 || g.signals != 1 {
				t.Errorf("%v: %d flush markers and %d SIGUSR1, want 1 each", g, g.flushes, g.signals)
			}
		}
	}
	for _, m := range macs {
		if _, err := os.Stat(filepath.Join("/dev/shm", compat.ObjectFile(m))); err == nil {
			t.Errorf("rtmd left the object %s behind", compat.MACObject(m))
		}
	}
	if len(wantRoutes) == 0 || len(wantMACs) == 0 {
		t.Errorf("the sequence left %d IPv4 routes and %d IPv4 MAC entries to compare", len(wantRoutes), len(wantMACs))
	}
	t.Logf("%d IPv4 routes, %d IPv4 MAC entries, seq %d", len(wantRoutes), len(wantMACs), seq)
}
