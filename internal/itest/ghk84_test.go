package itest_test

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

// randomMACs returns n distinct locally administered MACs, random per
// call: the ghk84 objects are named by the MAC, host-wide, so a test must
// not share names with another run.
func randomMACs(n int) []client.MAC {
	var b [4]byte
	rand.Read(b[:])
	out := make([]client.MAC, n)
	for i := range out {
		out[i] = client.MAC{0x02, b[0], b[1], b[2], byte(i >> 8), byte(i)}
	}
	return out
}

// macObject reads m's ghk84 object as its clients do: 16 bytes of text.
func macObject(m client.MAC) (string, error) {
	b, err := os.ReadFile(filepath.Join(shm.Dir, compat.ObjectFile(mac.Addr(m))))
	if err != nil {
		return "", err
	}
	if len(b) != compat.ObjectSize {
		return "", fmt.Errorf("object of %d bytes", len(b))
	}
	s, _, _ := strings.Cut(string(b), "\x00")
	return s, nil
}

// withObjects returns those of macs that have an object in /dev/shm:
// anything there but nothing counts, a bad object too.
func withObjects(macs ...client.MAC) []client.MAC {
	var out []client.MAC
	for _, m := range macs {
		if _, err := macObject(m); !errors.Is(err, os.ErrNotExist) {
			out = append(out, m)
		}
	}
	return out
}

// ghkReader is a ghk84 client in the test: it reads records and checks
// each against the layout and against what it was sent.
type ghkReader struct {
	t      *testing.T
	nc     net.Conn
	routes map[netip.Prefix]string
	macs   map[mac.Addr]string // the IP its object held at the CREATE
}

func dialGHK(t *testing.T, socket string, pid int32) *ghkReader {
	t.Helper()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(binary.LittleEndian.AppendUint32(nil, uint32(pid))); err != nil {
		t.Fatal(err)
	}
	return &ghkReader{t: t, nc: nc, routes: map[netip.Prefix]string{}, macs: map[mac.Addr]string{}}
}

// next reads one record and applies it.
func (g *ghkReader) next() (compat.Record, error) {
	g.t.Helper()
	b := make([]byte, compat.GHK84.Size)
	g.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(g.nc, b); err != nil {
		return compat.Record{}, err
	}
	rec, err := compat.GHK84.Decode(b)
	if err != nil {
		g.t.Fatalf("bad record %x: %v", b, err)
	}
	switch {
	case rec.Op == compat.None:
	case rec.Table == compat.Routes:
		_, had := g.routes[rec.Dst]
		switch {
		case rec.Op == compat.Create && had, rec.Op != compat.Create && !had:
			g.t.Errorf("op %d of %v, which it had: %v", rec.Op, rec.Dst, had)
		case rec.Op == compat.Delete:
			delete(g.routes, rec.Dst)
		default:
			g.routes[rec.Dst] = classicLine(rec.Dst, rec.Gateway, rec.Dev)
		}
	default:
		_, had := g.macs[rec.MAC]
		switch {
		case rec.Op == compat.Update:
			g.t.Errorf("UPDATE of MAC %v", rec.MAC)
		case rec.Op == compat.Create && had, rec.Op == compat.Delete && !had:
			g.t.Errorf("op %d of MAC %v, which it had: %v", rec.Op, rec.MAC, had)
		case rec.Op == compat.Delete:
			delete(g.macs, rec.MAC)
		default:
			ip, err := macObject(client.MAC(rec.MAC))
			if err != nil {
				g.t.Errorf("CREATE of MAC %v: its object: %v", rec.MAC, err)
			}
			g.macs[rec.MAC] = ip
		}
	}
	return rec, nil
}

// expect reads one record and checks its op, table and synchronized.
func (g *ghkReader) expect(op, table uint32, sync int32) compat.Record {
	g.t.Helper()
	rec, err := g.next()
	if err != nil {
		g.t.Fatalf("want op %d table %d: %v", op, table, err)
	}
	if rec.Op != op || rec.Table != table || rec.Sync != sync || rec.Loop != 1 {
		g.t.Fatalf("got %+v, want op %d table %d synchronized %d loop 1", rec, op, table, sync)
	}
	return rec
}

func compatClients(t *testing.T, d *daemon) []client.ClientInfo {
	t.Helper()
	var list []client.ClientInfo
	if err := json.Unmarshal([]byte(d.mustRtm("clients", "-j")), &list); err != nil {
		t.Fatal(err)
	}
	var out []client.ClientInfo
	for _, c := range list {
		if c.Transport == "compat" {
			out = append(out, c)
		}
	}
	return out
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestGHK84 walks a ghk84 client through its life: the two tables with
// their markers, each MAC's object there before its CREATE, an IP change
// that only rewrites the object, a delete whose object goes once read, a
// flush (a client whose pid is not its own is not signalled: it gets
// DELETEs), and the record with loop 0 when rtmd stops, which leaves no
// object behind.
func TestGHK84(t *testing.T) {
	sock := filepath.Join(shortDir(t), "NetworkAdminSocket")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	macs := randomMACs(3)
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
	d.mustRtm("route", "add", "10.2.0.0/16", "via", "192.0.2.2", "dev", "eth1")
	d.mustRtm("route", "add", "2001:db8::/32", "via", "2001:db8::1", "dev", "eth0") // no classic form
	d.mustRtm("mac", "add", macs[0].String(), "10.0.0.1")
	d.mustRtm("mac", "add", macs[1].String(), "10.0.0.2", "dev", "eth0")
	d.mustRtm("mac", "add", macs[2].String(), "2001:db8::2") // not IPv4: not sent

	g := dialGHK(t, sock, 1) // not its pid: served, not signalled
	g.expect(compat.Create, compat.Routes, compat.Wait)
	g.expect(compat.Create, compat.Routes, compat.Wait)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	g.expect(compat.Create, compat.MACs, compat.Wait)
	g.expect(compat.Create, compat.MACs, compat.Wait)
	g.expect(compat.None, compat.MACs, compat.MACsDone)
	want := map[mac.Addr]string{mac.Addr(macs[0]): "10.0.0.1", mac.Addr(macs[1]): "10.0.0.2"}
	if fmt.Sprint(g.macs) != fmt.Sprint(want) || len(g.routes) != 2 {
		t.Fatalf("after the tables: routes %v, MACs %v; want %v", g.routes, g.macs, want)
	}
	if _, err := macObject(macs[2]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("object of an IPv6 entry: %v", err)
	}
	if cl := compatClients(t, d); len(cl) != 1 || cl[0].Registered {
		t.Errorf("a client that wrote another pid: %+v, want unregistered", cl)
	}

	// A new IP only rewrites the object; the next record is the route.
	d.mustRtm("mac", "change", macs[0].String(), "10.9.9.9")
	if ip, err := macObject(macs[0]); ip != "10.9.9.9" || err != nil {
		t.Errorf("object after the change: %q, %v", ip, err)
	}
	d.mustRtm("route", "add", "10.3.0.0/16", "via", "192.0.2.3", "dev", "eth0")
	g.expect(compat.Create, compat.Routes, compat.RoutesDone)

	d.mustRtm("mac", "del", macs[1].String())
	if rec := g.expect(compat.Delete, compat.MACs, compat.MACsDone); rec.MAC != mac.Addr(macs[1]) {
		t.Errorf("DELETE of %v", rec.MAC)
	}
	eventually(t, "the deleted MAC's object to go", func() bool { return len(withObjects(macs[1])) == 0 })

	// A MAC whose IP becomes IPv6 is deleted from the client.
	d.mustRtm("mac", "change", macs[0].String(), "2001:db8::9")
	g.expect(compat.Delete, compat.MACs, compat.MACsDone)
	d.mustRtm("mac", "change", macs[0].String(), "10.0.0.7")
	g.expect(compat.Create, compat.MACs, compat.MACsDone)
	if g.macs[mac.Addr(macs[0])] != "10.0.0.7" {
		t.Errorf("MAC back to IPv4: %v", g.macs)
	}

	d.mustRtm("flush", "all")
	for range 3 {
		g.expect(compat.Delete, compat.Routes, compat.RoutesDone)
	}
	g.expect(compat.Delete, compat.MACs, compat.MACsDone)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	if len(g.routes)+len(g.macs) != 0 {
		t.Errorf("after the flush: %v %v", g.routes, g.macs)
	}

	d.mustRtm("mac", "add", macs[1].String(), "10.0.0.5")
	g.expect(compat.Create, compat.MACs, compat.MACsDone)
	d.stop()
	rec, err := g.next()
	if err != nil || rec.Op != compat.None || rec.Loop != 0 {
		t.Fatalf("as rtmd stops: %+v, %v; want NONE with loop 0", rec, err)
	}
	if _, err := g.next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last record: %v, want EOF", err)
	}
	if left := withObjects(macs...); len(left) > 0 {
		t.Errorf("objects of %v after rtmd stopped", left)
	}
}

// TestGHK84ObjectKeptUntilRead: the object of a deleted MAC stays while a
// client that was sent its CREATE has not read the DELETE.
func TestGHK84ObjectKeptUntilRead(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	m := randomMACs(1)[0]
	g := dialGHK(t, sock, 1)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	g.expect(compat.None, compat.MACs, compat.MACsDone)
	d.mustRtm("mac", "add", m.String(), "10.0.0.1")
	d.mustRtm("mac", "del", m.String())
	// The client has read neither record. The sweep runs every 20 ms.
	time.Sleep(200 * time.Millisecond)
	if ip, err := macObject(m); ip != "10.0.0.1" || err != nil {
		t.Fatalf("object before the client read its DELETE: %q, %v", ip, err)
	}
	g.expect(compat.Create, compat.MACs, compat.MACsDone)
	g.expect(compat.Delete, compat.MACs, compat.MACsDone)
	eventually(t, "the object to go", func() bool { return len(withObjects(m)) == 0 })
}

// TestCompatHalfClosed: a client that shuts down its writing side still
// gets the table and the changes.
func TestCompatHalfClosed(t *testing.T) {
	for _, l := range compat.Layouts {
		t.Run(l.Name, func(t *testing.T) {
			sock := filepath.Join(shortDir(t), "c.sock")
			d := startRtmd(t, "-compat-socket", sock+":"+l.Name)
			d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
			nc, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if l.HasMACs() {
				nc.Write(binary.LittleEndian.AppendUint32(nil, 1)) // not ours: never signalled
			}
			nc.(*net.UnixConn).CloseWrite()
			time.Sleep(100 * time.Millisecond) // rtmd sees the EOF
			d.mustRtm("route", "add", "10.2.0.0/16", "via", "192.0.2.2", "dev", "eth0")
			r := bufio.NewReader(nc)
			var dsts []string
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			for len(dsts) < 2 {
				b := make([]byte, l.Size)
				if _, err := io.ReadFull(r, b); err != nil {
					t.Fatalf("after %v: %v", dsts, err)
				}
				rec, err := l.Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				if rec.Op == compat.Create {
					dsts = append(dsts, rec.Dst.String())
				}
			}
			if dsts[0] != "10.1.0.0/16" || dsts[1] != "10.2.0.0/16" {
				t.Errorf("got %v", dsts)
			}
			if len(compatClients(t, d)) != 1 {
				t.Error("the half-closed client is not listed")
			}
		})
	}
}

// TestGHK84Goodbye: a ghk84 client that writes 1 is gone.
func TestGHK84Goodbye(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	g := dialGHK(t, sock, 1)
	g.expect(compat.None, compat.Routes, compat.RoutesDone)
	if n := len(compatClients(t, d)); n != 1 {
		t.Fatalf("%d compat clients", n)
	}
	g.nc.Write(binary.LittleEndian.AppendUint32(nil, 1))
	eventually(t, "the client to go", func() bool { return len(compatClients(t, d)) == 0 })
}

// ghkClientMain is a ghk84 client in its own process, for the signal: it
// writes its own pid, and prints "signal" on SIGUSR1 and a line per record.
func ghkClientMain() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	nc, err := net.Dial("unix", os.Getenv("RTM_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nc.Write(binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid())))
	go func() {
		io.Copy(io.Discard, os.Stdin) // the test is done
		os.Exit(0)
	}()
	recs := make(chan string)
	go func() {
		b := make([]byte, compat.GHK84.Size)
		for {
			if _, err := io.ReadFull(nc, b); err != nil {
				close(recs)
				return
			}
			rec, err := compat.GHK84.Decode(b)
			if err != nil {
				recs <- "error " + err.Error()
				continue
			}
			recs <- fmt.Sprintf("op %d table %d sync %d loop %d", rec.Op, rec.Table, rec.Sync, rec.Loop)
		}
	}()
	for {
		select {
		case <-sig:
			fmt.Println("signal")
		case r, ok := <-recs:
			if !ok {
				return
			}
			fmt.Println(r)
		}
	}
}

// TestGHK84Signal: a ghk84 client whose pid is its own is registered and,
// on a flush, gets SIGUSR1 and a NONE record, and no DELETE.
func TestGHK84Signal(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	m := randomMACs(1)[0]
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
	d.mustRtm("mac", "add", m.String(), "10.0.0.1")
	s := startHelper(t, execHelper("ghk84client", sock))
	for _, want := range []string{"op 0 table 0 sync 0 loop 1", "op 3 table 0 sync 1 loop 1", "op 0 table 1 sync 0 loop 1", "op 3 table 1 sync 2 loop 1"} {
		if got := s.line(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if cl := compatClients(t, d); len(cl) != 1 || !cl[0].Registered {
		t.Fatalf("%+v, want one registered compat client", cl)
	}
	d.mustRtm("flush", "all")
	// The signal and the record race to the client's stdout; both come,
	// and nothing else.
	got := map[string]bool{s.line(t): true, s.line(t): true}
	if !got["signal"] || !got["op 3 table 0 sync 1 loop 1"] {
		t.Fatalf("after the flush: %v, want the signal and a NONE record", got)
	}
	d.mustRtm("route", "add", "10.2.0.0/16", "via", "192.0.2.2", "dev", "eth0")
	if got := s.line(t); got != "op 0 table 0 sync 1 loop 1" {
		t.Fatalf("after the flush, a new route: %q", got)
	}
}

// line reads a line the helper printed, waiting at most 10 s.
func (s *subscriber) line(t *testing.T) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		l, _ := s.out.ReadString('\n')
		ch <- strings.TrimSuffix(l, "\n")
	}()
	select {
	case l := <-ch:
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("no line from the helper; its stderr: %s", s.stderr)
		return ""
	}
}

// TestGHK84FlushUnread: a registered client that has not read everything
// sent before a flush is not signalled (its handler would empty its tables
// before it applied those records): it gets a DELETE per entry instead.
func TestGHK84FlushUnread(t *testing.T) {
	sock := filepath.Join(shortDir(t), "ghk.sock")
	d := startRtmd(t, "-compat-socket", sock+":ghk84")
	m := randomMACs(1)[0]
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0")
	d.mustRtm("mac", "add", m.String(), "10.0.0.1")
	s := startHelper(t, execHelper("ghk84client", sock))
	for range 4 {
		s.line(t)
	}
	if cl := compatClients(t, d); len(cl) != 1 || !cl[0].Registered {
		t.Fatalf("%+v, want one registered compat client", cl)
	}
	s.cmd.Process.Signal(syscall.SIGSTOP)
	d.mustRtm("route", "add", "10.2.0.0/16", "via", "192.0.2.2", "dev", "eth0")
	d.mustRtm("flush", "all")
	eventually(t, "rtmd to give up on signalling", func() bool {
		return strings.Contains(d.stderr.String(), "not signalled for a flush")
	})
	s.cmd.Process.Signal(syscall.SIGCONT)
	for _, want := range []string{
		"op 0 table 0 sync 1 loop 1", // the route it had not read
		"op 2 table 0 sync 1 loop 1", "op 2 table 0 sync 1 loop 1", "op 2 table 1 sync 2 loop 1",
		"op 3 table 0 sync 1 loop 1",
	} {
		if got := s.line(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
