package itest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// peer is a raw protocol connection to rtmd, past the handshake.
type peer struct {
	t  *testing.T
	nc net.Conn
	r  *wire.Reader
}

func dialPeer(t *testing.T, network, addr string) *peer {
	t.Helper()
	return dialPeerNamed(t, network, addr, "raw peer")
}

func dialPeerNamed(t *testing.T, network, addr, name string) *peer {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &peer{t: t, nc: nc, r: wire.NewReader(nc)}
	p.send(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: name}))
	if typ, body := p.frame(); typ != wire.TWelcome {
		t.Fatalf("first frame from rtmd: type %d %q, want Welcome", typ, body)
	}
	return p
}

func (p *peer) send(b []byte) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// frame reads the next frame; it fails the test on an error.
func (p *peer) frame() (byte, []byte) {
	p.t.Helper()
	typ, body, err := p.next()
	if err != nil {
		p.t.Fatal(err)
	}
	return typ, body
}

func (p *peer) next() (byte, []byte, error) {
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, body, err := p.r.ReadFrame()
	return typ, bytes.Clone(body), err
}

// reply reads frames up to the reply to id and returns its status and body.
func (p *peer) reply(id uint32) (byte, string) {
	p.t.Helper()
	for {
		typ, body := p.frame()
		switch {
		case typ == wire.TError:
			p.t.Fatalf("rtmd closed the connection: %q", body)
		case typ == wire.TReply && binary.LittleEndian.Uint32(body) == id:
			return body[4], string(body[5:])
		}
	}
}

// loadChunk is a route-load (or MAC-load) request chunk.
func loadChunk(id uint32, kind byte, final bool, body []byte) []byte {
	flags := byte(0)
	if final {
		flags = wire.LoadFinal
	}
	return wire.AppendRequest(nil, id, kind, append([]byte{flags}, body...))
}

// routeChunk encodes n routes 10.x.y.0/24 as a load chunk's body.
func routeChunk(n int, gw string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(n))
	for i := range n {
		r := route.Simple(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), netip.MustParseAddr(gw), "eth0")
		b = wire.AppendRoute(b, r)
	}
	return b
}

// TestInterleavedLoadKinds: a MAC-load chunk and then a route-load chunk
// under the same request id once crashed rtmd. Now the connection is
// dropped with a protocol error and rtmd serves on, its table unchanged.
func TestInterleavedLoadKinds(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	before, seq := d.table()
	for _, order := range [][2]byte{{wire.KMACLoad, wire.KLoad}, {wire.KLoad, wire.KMACLoad}} {
		p := dialPeer(t, "unix", d.socket)
		first := binary.LittleEndian.AppendUint32(nil, 0) // an empty chunk of either kind
		if order[0] == wire.KLoad {
			first = routeChunk(1, "10.1.1.9")
		}
		p.send(loadChunk(7, order[0], false, first))
		p.send(loadChunk(7, order[1], true, routeChunk(1, "10.1.1.9")))
		typ, body := p.frame()
		if typ != wire.TError || !strings.Contains(string(body), "started before load 7") {
			t.Errorf("kinds %v: got frame %d %q, want a protocol error", order, typ, body)
		}
	}
	after, seq2 := d.table()
	if seq2 != seq || strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("table changed: %v at %d, want %v at %d", after, seq2, before, seq)
	}
}

// TestSubscribeInSameTurn pipelines a change and a subscription, so that
// they land in one turn of rtmd's loop: the stream must still begin with
// SnapBegin, and the changes after Synced must follow the snapshot's
// sequence number without a gap.
func TestSubscribeInSameTurn(t *testing.T) {
	d := startRtmd(t)
	for i := range 20 {
		p := dialPeer(t, "unix", d.socket)
		r := route.Simple(netip.MustParsePrefix("10.0.0.0/8"), netip.AddrFrom4([4]byte{10, 1, 1, byte(i)}), "eth0")
		// One write: the replace, the subscription, another replace.
		var b []byte
		b = append(b, wire.AppendRequest(nil, 1, wire.KReplace, wire.AppendRoute(nil, r))...)
		b = append(b, wire.AppendRequest(nil, 0, wire.KSubscribe, nil)...)
		r.Hops = []route.NextHop{{Gateway: r.Hops[0].Gateway, Dev: "eth1", Weight: 1}}
		b = append(b, wire.AppendRequest(nil, 2, wire.KReplace, wire.AppendRoute(nil, r))...)
		p.send(b)
		var (
			begun, synced bool
			snap, last    uint64
			replies       int
		)
		var dec wire.Decoder
		for !synced || replies < 2 || last == 0 {
			typ, body := p.frame()
			switch typ {
			case wire.TReply:
				replies++
			case wire.TSnapBegin:
				if begun {
					t.Fatalf("round %d: a second SnapBegin", i)
				}
				begun = true
				snap = binary.LittleEndian.Uint64(body)
			case wire.TSynced:
				synced = true
			case wire.TChanges:
				if !synced {
					t.Fatalf("round %d: Changes before the snapshot is complete (begun %v)", i, begun)
				}
				if err := dec.Changes(body, func(c wire.Change) {
					if want := max(snap, last) + 1; c.Seq != want {
						t.Errorf("round %d: change %d after the snapshot at %d, last %d; want %d", i, c.Seq, snap, last, want)
					}
					last = c.Seq
				}); err != nil {
					t.Fatal(err)
				}
			case wire.TSnapshot, wire.TMACSeg, wire.TSnapMACs:
				if !begun {
					t.Fatalf("round %d: frame type %d before SnapBegin", i, typ)
				}
			default:
				t.Fatalf("round %d: unexpected frame %d %q", i, typ, body)
			}
			if synced && replies == 2 && last == 0 && snap >= 2*uint64(i)+2 {
				break // both replaces were in the snapshot
			}
		}
		p.nc.Close()
	}
}

// TestRegisterExitedPid: a process connects and hands its connection to a
// child, then exits; the child registers its parent's pid, which a new
// process could have by now. rtmd must refuse: it signals only the process
// that connected (SO_PEERPIDFD), and that one is gone.
func TestRegisterExitedPid(t *testing.T) {
	d := startRtmd(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	goR, goW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer goW.Close()
	parent := execHelper("pidparent", d.socket)
	parent.Stdout, parent.Stdin, parent.Stderr = pw, goR, os.Stderr
	if err := parent.Run(); err != nil {
		t.Fatalf("parent: %v", err)
	}
	pw.Close()
	goR.Close()
	// The parent has exited; its child holds the connection.
	out := bufio_lines(pr)
	parentPid := <-out
	fmt.Fprintln(goW, "register")
	got := <-out
	if !strings.Contains(got, "has exited") {
		t.Errorf("child registering its exited parent %s: %q, want a refusal saying the process has exited", parentPid, got)
	}
}

// bufio_lines sends the lines read from r, then "EOF".
func bufio_lines(r io.Reader) <-chan string {
	ch := make(chan string, 16)
	go func() {
		b := make([]byte, 0, 256)
		buf := make([]byte, 1)
		for {
			if _, err := r.Read(buf); err != nil {
				ch <- "EOF"
				close(ch)
				return
			}
			if buf[0] == '\n' {
				ch <- string(b)
				b = b[:0]
				continue
			}
			b = append(b, buf[0])
		}
	}()
	return ch
}

// pidParentMain connects to rtmd, starts a child that inherits the
// connection, prints its own pid and exits.
func pidParentMain() {
	nc, err := net.Dial("unix", os.Getenv("RTM_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "parent"}))
	f, err := nc.(*net.UnixConn).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "RTM_ITEST_HELPER=pidchild", "RTM_PARENT_PID="+strconv.Itoa(os.Getpid()))
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.ExtraFiles = []*os.File{f}
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(os.Getpid())
}

// pidChildMain waits for a line on stdin (sent once its parent has
// exited), registers the parent's pid on the inherited connection and
// prints rtmd's answer.
func pidChildMain() {
	nc, err := net.FileConn(os.NewFile(3, "rtmd"))
	if err != nil {
		fmt.Println("fileconn:", err)
		return
	}
	var line [64]byte
	os.Stdin.Read(line[:])
	pid, _ := strconv.Atoi(os.Getenv("RTM_PARENT_PID"))
	nc.Write(wire.AppendRequest(nil, 5, wire.KRegister, binary.LittleEndian.AppendUint32(nil, uint32(pid))))
	r := wire.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, p, err := r.ReadFrame()
		if err != nil {
			fmt.Println("read:", err)
			return
		}
		if typ == wire.TReply {
			if p[4] == wire.StatusOK {
				fmt.Println("registered")
			} else {
				fmt.Println("refused:", strings.ReplaceAll(string(p[7:]), "\n", " "))
			}
			return
		}
	}
}

// TestConnectionFlood holds 2,000 TCP connections against a limit of 100
// and a few Unix ones against the per-uid limit: those past a limit are
// refused at once with a reason, and a local `rtm route add` still works
// while the TCP connections are held.
func TestConnectionFlood(t *testing.T) {
	d := startRtmd(t, "-listen", "127.0.0.1:0", "-max-tcp-conns", "100", "-max-tcp-conns-per-addr", "1000")
	addr := d.status().TCP
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := 0
	for i := range 2000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, c)
		if i < 100 {
			continue
		}
		// Past the limit: an error frame and the end of the connection.
		if i%100 == 0 {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, p, err := wire.NewReader(c).ReadFrame()
			if err != nil || typ != wire.TError || !strings.Contains(string(p), "-max-tcp-conns") {
				t.Errorf("connection %d past the limit: frame %d %q, %v; want a refusal naming -max-tcp-conns", i, typ, p, err)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("checked no refused connection")
	}
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	if out := d.mustRtm("route", "show"); !strings.Contains(out, "10.0.0.0/8") {
		t.Errorf("route show = %q", out)
	}
	if n := strings.Count(d.stderr.String(), "connection refused"); n > 3 {
		t.Errorf("%d log lines for refused connections; want them rate-limited", n)
	}
}

// TestConnsPerUID: past -max-conns-per-uid, a Unix peer is refused with a
// reason; when one closes, a new one is admitted.
func TestConnsPerUID(t *testing.T) {
	d := startRtmd(t, "-max-conns-per-uid", "4")
	var held []*peer
	for range 4 {
		held = append(held, dialPeer(t, "unix", d.socket))
	}
	_, err := client.Dial(context.Background(), d.socket)
	if err == nil || !strings.Contains(err.Error(), "-max-conns-per-uid") {
		t.Fatalf("fifth connection: %v; want a refusal naming -max-conns-per-uid", err)
	}
	held[0].nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := client.Dial(context.Background(), d.socket)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoadOverTCPRefusedAtFirstChunk: a TCP peer's load is answered with a
// refusal at its first chunk, before a final chunk, and nothing is staged.
func TestLoadOverTCPRefusedAtFirstChunk(t *testing.T) {
	d := startRtmd(t, "-listen", "127.0.0.1:0")
	p := dialPeer(t, "tcp", d.status().TCP)
	for _, kind := range []byte{wire.KLoad, wire.KMACLoad} {
		p.send(loadChunk(uint32(kind), kind, false, routeChunk(1000, "10.1.1.1")))
		st, msg := p.reply(uint32(kind))
		if st != wire.StatusPermission || !strings.Contains(msg, "permission denied") {
			t.Errorf("kind %d: reply %d %q, want permission denied", kind, st, msg)
		}
		// The rest of the refused load is dropped, and the peer may go on.
		p.send(loadChunk(uint32(kind), kind, true, routeChunk(10, "10.1.1.1")))
	}
	p.send(wire.AppendRequest(nil, 99, wire.KGet, wire.AppendAddr(make([]byte, 4), netip.MustParseAddr("10.0.0.1"))))
	if st, _ := p.reply(99); st != wire.StatusNotFound {
		t.Errorf("get after the refused loads: status %d, want not found", st)
	}
	if st := d.status(); st.Routes4 != 0 {
		t.Errorf("%d routes after refused loads", st.Routes4)
	}
	// Nor does a TCP peer learn local pids, uids or names.
	p.send(wire.AppendRequest(nil, 100, wire.KClients, nil))
	if st, msg := p.reply(100); st != wire.StatusPermission {
		t.Errorf("clients over TCP: status %d %q, want permission denied", st, msg)
	}
	p.send(wire.AppendRequest(nil, 101, wire.KStatus, nil))
	if _, msg := p.reply(101); strings.Contains(msg, "rtm-") {
		t.Errorf("status over TCP names local objects: %q", msg)
	}
}

// TestStagingBudget: loads staged by connections together are bounded by
// -max-staged; one past it is refused at once, and the budget comes back
// when the staging connection goes.
func TestStagingBudget(t *testing.T) {
	d := startRtmd(t, "-max-staged", "100000")
	a := dialPeer(t, "unix", d.socket)
	a.send(loadChunk(1, wire.KLoad, false, routeChunk(3000, "10.1.1.1"))) // ~60 kB and its index
	// a's reader handles its frames in order: once it has answered a
	// status request sent after the chunk, the chunk is staged.
	a.send(wire.AppendRequest(nil, 50, wire.KStatus, nil))
	if st, msg := a.reply(50); st != wire.StatusOK {
		t.Fatalf("status after the first chunk: %d %q", st, msg)
	}
	b := dialPeer(t, "unix", d.socket)
	b.send(loadChunk(2, wire.KLoad, false, routeChunk(3000, "10.1.1.2")))
	if st, msg := b.reply(2); st != wire.StatusError || !strings.Contains(msg, "-max-staged") {
		t.Fatalf("second load: %d %q, want a refusal naming -max-staged", st, msg)
	}
	a.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for id := uint32(10); ; id++ {
		c := dialPeer(t, "unix", d.socket)
		c.send(loadChunk(id, wire.KLoad, true, routeChunk(3000, "10.1.1.3")))
		st, msg := c.reply(id)
		c.nc.Close()
		if st == wire.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("load after the stager left: %d %q", st, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := d.status(); st.Routes4 != 3000 {
		t.Errorf("%d routes, want 3000", st.Routes4)
	}
}

// TestStalledSubscriberDropped: a subscriber that stops reading in the
// middle of its snapshot, while the table changes under it, is dropped
// within -write-timeout, and rtmd's memory comes back near where it was.
func TestStalledSubscriberDropped(t *testing.T) {
	d := startRtmd(t, "-write-timeout", "1s")
	const n = 200_000
	load := func(gw string) {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "11.%d.%d.%d/32 via %s dev eth0\n", i>>16&255, i>>8&255, i&255, gw)
		}
		if _, errs, code := d.rtm(sb.String(), "route", "load", "-"); code != 0 {
			t.Fatalf("route load: %s", errs)
		}
	}
	load("10.1.1.1")
	base := settledRSS(t, d)
	// The live heap as of rtmd's collection after the load, which it
	// runs at once: the least seen over a second and a half.
	baseHeap := d.status().HeapLive
	for range 15 {
		time.Sleep(100 * time.Millisecond)
		baseHeap = min(baseHeap, d.status().HeapLive)
	}

	p := dialPeer(t, "unix", d.socket)
	p.send(wire.AppendRequest(nil, 0, wire.KSubscribe, nil))
	// The peer reads nothing. Every route changes, so the snapshot's view
	// of the old table and the changes queued behind it are rtmd's to hold
	// until the deadline.
	load("10.2.2.2")
	peak := int(rss(d.cmd.Process.Pid))
	start := time.Now()
	for !strings.Contains(d.stderr.String(), "did not read within the write timeout") {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the stalled subscriber was not dropped\n%s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := d.mustRtm("clients")
	if strings.Contains(out, "raw peer") {
		t.Errorf("the dropped subscriber is still listed:\n%s", out)
	}
	// rtmd collects and returns the memory within a second or so of the
	// drop. The race detector's shadow memory is never returned, so RSS
	// is checked only without it; the live heap always.
	wantRSS, wantHeap := base+base/4+8<<20, baseHeap+baseHeap/2
	after, heap := int(rss(d.cmd.Process.Pid)), d.status().HeapLive
	for deadline := time.Now().Add(10 * time.Second); (after > wantRSS && !raceEnabled || heap > wantHeap) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after, heap = int(rss(d.cmd.Process.Pid)), d.status().HeapLive
	}
	t.Logf("rtmd RSS: %d MB after the first load, %d MB with the stalled subscriber, %d MB after dropping it; live heap %d MB, then %d MB", base>>20, peak>>20, after>>20, baseHeap>>20, heap>>20)
	if after > wantRSS && !raceEnabled {
		t.Errorf("rtmd RSS %d MB 10 s after the drop, want near its %d MB before the stalled subscriber", after>>20, base>>20)
	}
	if heap > wantHeap {
		t.Errorf("rtmd live heap %d MB 10 s after the drop, want near its %d MB before the stalled subscriber", heap>>20, baseHeap>>20)
	}
}

// settledRSS returns rtmd's RSS once it has stopped falling: rtmd returns
// a big load's memory to the OS in the background.
func settledRSS(t *testing.T, d *daemon) int {
	t.Helper()
	last := int(rss(d.cmd.Process.Pid))
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		now := int(rss(d.cmd.Process.Pid))
		if now >= last-(1<<20) {
			return min(now, last)
		}
		last = now
	}
	return last
}

// TestSIGHUP: rtmd stops cleanly on SIGHUP, leaving nothing behind (the
// harness checks the socket, the queue and the segments).
func TestSIGHUP(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	d.stopWith(syscall.SIGHUP)
}

// TestConsoleOnlyInForeground: rtmd reads its console only when stdin is a
// terminal whose foreground process group is rtmd's. Started in the
// background (stdin a terminal it does not control), it leaves the terminal
// alone instead of stopping on SIGTTIN.
func TestConsoleOnlyInForeground(t *testing.T) {
	for _, fg := range []bool{false, true} {
		t.Run(fmt.Sprintf("foreground=%v", fg), func(t *testing.T) {
			pty, tty := openPty(t)
			d := startRtmdWith(t, func(cmd *exec.Cmd) {
				cmd.Stdin = tty
				if fg {
					// A session of its own, with the terminal as its
					// controlling terminal: rtmd is its foreground.
					cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
				} else {
					cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				}
			})
			tty.Close()
			go io.Copy(io.Discard, pty) // what rtmd echoes, if anything
			d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
			// rtmd decides before it serves; a started console prints its
			// menu soon after.
			started := false
			for deadline := time.Now().Add(10 * time.Second); fg && !started && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				started = strings.Contains(d.stdout.String(), "rtmd console")
			}
			started = strings.Contains(d.stdout.String(), "rtmd console")
			if started != fg {
				t.Errorf("console started = %v, want %v; stdout:\n%s", started, fg, d.stdout)
			}
			d.stop()
		})
	}
}

// openPty returns a new pseudo-terminal's master and slave.
func openPty(t *testing.T) (pty, tty *os.File) {
	t.Helper()
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pty.Close() })
	fd := int(pty.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(os.NewSyscallError("TIOCSPTLCK", err))
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(os.NewSyscallError("TIOCGPTN", err))
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pty, tty
}

// TestLogFlood: events any peer can cause, protocol errors and
// subscribers coming and going, are logged once per cause and 10 s, not
// once each.
func TestLogFlood(t *testing.T) {
	d := startRtmd(t)
	for range 50 {
		nc, err := net.Dial("unix", d.socket)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		io.Copy(io.Discard, nc) // rtmd answers with an Error frame and closes
		nc.Close()

		p := dialPeer(t, "unix", d.socket)
		p.send(wire.AppendRequest(nil, 0, wire.KSubscribe, nil))
		for typ, _ := p.frame(); typ != wire.TSynced; typ, _ = p.frame() {
		}
		p.nc.Close()
	}
	d.status() // the loop has handled every departure before this
	log := d.stderr.String()
	for _, msg := range []string{`msg="dropping client"`, `msg="subscriber gone"`} {
		if n := strings.Count(log, msg); n < 1 || n > 2 {
			t.Errorf("%d lines of %s for 50 events; want 1 or 2 (once per 10 s)", n, msg)
		}
	}
}

// TestUnreadReplies: a peer that pipelines requests and never reads the
// replies stalls only itself: rtmd stops reading its requests once a few
// replies are unread, holds little for it, serves others meanwhile, and
// drops it at the write deadline.
func TestUnreadReplies(t *testing.T) {
	d := startRtmd(t, "-listen", "127.0.0.1:0", "-write-timeout", "3s")
	base := d.status().HeapLive
	var peers []*peer
	for range 8 {
		p := dialPeer(t, "tcp", d.status().TCP)
		peers = append(peers, p)
		go func() {
			req := wire.AppendRequest(nil, 1, wire.KStatus, nil)
			var b []byte
			for range 1000 {
				b = append(b, req...)
			}
			p.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, err := p.nc.Write(b); err != nil {
					return // rtmd stopped reading, then dropped us
				}
			}
		}()
	}
	time.Sleep(time.Second) // let them pour requests in
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	if heap := d.status().HeapLive; heap > base+16<<20 {
		t.Errorf("live heap %d MB with 8 peers not reading their replies, from %d MB", heap>>20, base>>20)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(d.stderr.String(), "did not read within the write timeout"); {
		if time.Now().After(deadline) {
			t.Fatalf("the peers were not dropped\n%s", d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range peers {
		p.nc.Close()
	}
}

// TestManyClientsListed: the client list is not cut when its JSON passes
// 64 KiB (300 clients with the longest names).
func TestManyClientsListed(t *testing.T) {
	d := startRtmd(t, "-max-conns-per-uid", "1000")
	for i := range 300 {
		dialPeerNamed(t, "unix", d.socket, fmt.Sprintf("%03d%s", i, strings.Repeat("n", wire.MaxNameLen-3)))
	}
	var list []client.ClientInfo
	out := d.mustRtm("clients", "-j")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("rtm clients -j (%d bytes): %v", len(out), err)
	}
	if len(list) < 300 {
		t.Errorf("%d clients listed, want at least 300", len(list))
	}
}

// TestStagingBudgetCountsNextHops: a load whose routes each have their own
// gateway costs rtmd far more than its bytes; the budget counts it.
func TestStagingBudgetCountsNextHops(t *testing.T) {
	d := startRtmd(t, "-max-staged", "20000000")
	base := d.status().HeapLive
	p := dialPeer(t, "unix", d.socket)
	stageUntilRefused(t, p, func(id uint32) []byte {
		// 12,000 routes, every one with another gateway: ~230 KB of bytes.
		b := binary.LittleEndian.AppendUint32(nil, 12_000)
		for i := range 12_000 {
			n := int(id)*12_000 + i
			r := route.Simple(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32),
				netip.AddrFrom4([4]byte{11, byte(n >> 16), byte(n >> 8), byte(n)}), "eth0")
			b = wire.AppendRoute(b, r)
		}
		return b
	})
	if heap := d.status().HeapLive; heap > base+60<<20 {
		t.Errorf("live heap %d MB while staging against a 20 MB budget (from %d MB)", heap>>20, base>>20)
	}
}

// stageUntilRefused sends the chunks chunk(1), chunk(2), ... of one load
// (request id 1), never its last, until rtmd refuses the load for
// -max-staged; after each chunk it asks for a route, to know the chunk was
// taken. It fails the test on another refusal, or if 400 chunks go in.
func stageUntilRefused(t *testing.T, p *peer, chunk func(id uint32) []byte) {
	t.Helper()
	for id := uint32(1); id < 400; id++ {
		p.send(loadChunk(1, wire.KLoad, false, chunk(id)))
		p.send(wire.AppendRequest(nil, 1000+id, wire.KGet, wire.AppendAddr(make([]byte, 4), netip.MustParseAddr("1.1.1.1"))))
		refused := false
		for {
			typ, body := p.frame()
			if typ != wire.TReply {
				continue
			}
			if got := binary.LittleEndian.Uint32(body); got == 1 {
				if !strings.Contains(string(body), "-max-staged") {
					t.Fatalf("load refused with %q", body[5:])
				}
				refused = true
				continue
			}
			break
		}
		if refused {
			return
		}
	}
	t.Fatal("a load far past -max-staged was never refused")
}

// TestConnsReservedForWriters: users who may only subscribe cannot fill
// -max-conns and lock out root: a peer that may change the tables is held
// to its per-uid limit only.
func TestConnsReservedForWriters(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to connect as other uids")
	}
	d := startRtmd(t, "-max-conns", "4")
	os.Chmod(filepath.Dir(d.socket), 0o755)
	os.Chmod(d.socket, 0o666)
	// Four connections of another uid, which may only subscribe, fill
	// the total: a helper process of that uid holds them.
	dir := shortDir(t)
	os.Chmod(dir, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "holder")
	copyFile(t, self, exe)
	holder := execHelper("holdconns", d.socket, "RTM_HOLD=4")
	holder.Path, holder.Args[0] = exe, exe
	holder.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4245, Gid: 4245}}
	h := startHelper(t, holder)
	if line, err := h.out.ReadString('\n'); err != nil || line != "holding 4\n" {
		t.Fatalf("holder: %q, %v\n%s", line, err, h.stderr)
	}
	if _, err := client.Dial(context.Background(), d.socket); err != nil {
		t.Errorf("root's connection past -max-conns of subscribe-only peers: %v", err)
	}
	out, errs, code := d.rtm("", "route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	if code != 0 {
		t.Errorf("rtm route add with the total filled by others: exit %d %s%s", code, out, errs)
	}
}

// holdConnsMain opens $RTM_HOLD connections to rtmd, says so, and holds
// them until its stdin closes.
func holdConnsMain() {
	n, _ := strconv.Atoi(os.Getenv("RTM_HOLD"))
	var conns []net.Conn
	for range n {
		nc, err := net.Dial("unix", os.Getenv("RTM_SOCKET"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "holder"}))
		if typ, _, err := wire.NewReader(nc).ReadFrame(); err != nil || typ != wire.TWelcome {
			fmt.Fprintln(os.Stderr, "no welcome:", typ, err)
			os.Exit(1)
		}
		conns = append(conns, nc)
	}
	fmt.Printf("holding %d\n", len(conns))
	io.Copy(io.Discard, os.Stdin)
}

// TestUnreadClientLists: the client list is the one large reply; a peer
// that asks for it over and over without reading is refused, briefly,
// rather than have rtmd hold a list per request.
func TestUnreadClientLists(t *testing.T) {
	d := startRtmd(t, "-max-conns-per-uid", "1000")
	for i := range 300 {
		dialPeerNamed(t, "unix", d.socket, fmt.Sprintf("%03d%s", i, strings.Repeat("<", wire.MaxNameLen-3)))
	}
	base := d.status().HeapLive
	p := dialPeer(t, "unix", d.socket)
	var b []byte
	for id := range uint32(200) {
		b = append(b, wire.AppendRequest(nil, id, wire.KClients, nil)...)
	}
	go p.nc.Write(b) // rtmd may stop reading them for a while
	time.Sleep(time.Second)
	if heap := d.status().HeapLive; heap > base+16<<20 {
		t.Errorf("live heap %d MB with 200 client lists asked for and unread, from %d MB", heap>>20, base>>20)
	}
	lists, busy := 0, 0
	for id := range uint32(200) {
		switch st, msg := p.reply(id); {
		case st == wire.StatusOK:
			lists++
		case strings.Contains(msg, "busy"):
			busy++
		default:
			t.Fatalf("reply %d %q", st, msg)
		}
	}
	if lists == 0 || busy == 0 {
		t.Errorf("%d lists and %d refusals for 200 unread requests; want some of each", lists, busy)
	}
}

// TestPartialFrame: a request frame is at most 256 KiB, and a peer that
// sends part of one is dropped within 10 s rather than have rtmd hold the
// buffer for as long as it likes.
func TestPartialFrame(t *testing.T) {
	d := startRtmd(t)
	big := dialPeer(t, "unix", d.socket)
	big.send(binary.LittleEndian.AppendUint32(nil, 300<<10))
	big.send([]byte{wire.TRequest})
	if typ, body := big.frame(); typ != wire.TError || !strings.Contains(string(body), "limit 262144") {
		t.Errorf("a 300 KiB request: frame %d %q, want an error naming the 256 KiB limit", typ, body)
	}

	p := dialPeer(t, "unix", d.socket)
	p.send(append(binary.LittleEndian.AppendUint32(nil, 200<<10), wire.TRequest))
	p.send(make([]byte, 100<<10)) // half of it, and no more
	start := time.Now()
	p.nc.SetReadDeadline(start.Add(20 * time.Second))
	typ, body, err := p.r.ReadFrame()
	for err == nil && typ != wire.TError {
		typ, body, err = p.r.ReadFrame()
	}
	if err != nil || !strings.Contains(string(body), "truncated frame") || time.Since(start) > 15*time.Second {
		t.Errorf("half a frame: after %v, frame %d %q, %v; want the connection dropped within 10 s", time.Since(start), typ, body, err)
	}
	d.status() // rtmd serves on
}
