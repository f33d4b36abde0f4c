package itest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/wire"
)

// Adversarial tests of the state directory (issue 13): what an operator's
// mistakes or a damaged directory do to rtmd at start.

// runRtmdUntilExit starts rtmd on dir and waits for it to exit (it is
// expected to refuse the directory). It kills rtmd, and reports it, when
// rtmd is still running after 10 s or when its resident memory passes
// maxRSS bytes; it returns rtmd's output and whether it exited by itself.
func runRtmdUntilExit(t *testing.T, dir string, maxRSS int64, args ...string) (out string, exited bool) {
	t.Helper()
	var buf lockedBuffer
	sock := filepath.Join(shortDir(t), "a.sock")
	cmd := exec.Command(filepath.Join(binDir, "rtmd"), append([]string{"-socket", sock, "-mq", "off", "-no-console", "-state", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer leftovers(sock) // a killed rtmd leaves its socket and segment
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return buf.String(), true
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Errorf("rtmd on %s still running after 10 s (killed)", dir)
			return buf.String(), false
		case <-tick.C:
			if rss := vmRSS(cmd.Process.Pid); rss > maxRSS {
				cmd.Process.Kill()
				<-done
				t.Errorf("rtmd on %s holds %d MiB resident, past %d MiB (killed)", dir, rss>>20, maxRSS>>20)
				return buf.String(), false
			}
		}
	}
}

// vmRSS returns the resident memory of process pid in bytes, 0 if unknown.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// newStateDir returns a fresh state directory holding a valid history
// file and nothing else.
func newStateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "history"), []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAdvStateFIFO: a FIFO where rtmd expects one of its files (an
// operator's mistake, or a directory restored by a tool that copies
// special files) makes rtmd refuse the directory, naming the file. Before
// the fix rtmd blocked for ever in open(2) after it has created its socket (clients
// that connect waited for a Welcome that never came), and SIGTERM did not
// stop it: it was blocked before its loop runs.
func TestAdvStateFIFO(t *testing.T) {
	for _, name := range []string{"history", "journal-0000000000000000", "snapshot-0000000000000000"} {
		t.Run(name, func(t *testing.T) {
			dir := newStateDir(t)
			if name == "history" {
				os.Remove(filepath.Join(dir, "history"))
			}
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
				t.Fatal(err)
			}
			out, exited := runRtmdUntilExit(t, dir, 1<<30)
			if exited && !strings.Contains(out, name) {
				t.Errorf("rtmd on a state directory with a FIFO %s: the error does not name it:\n%s", name, out)
			}
		})
	}
}

// TestAdvStateHistoryDevZero: a history file that is not a small regular
// file (a symbolic link to /dev/zero, or a huge file) is refused at once.
// Before the fix rtmd read it whole into memory (os.ReadFile): on /dev/zero it grew
// without end (7 GB resident within seconds, until the OOM killer).
func TestAdvStateHistoryDevZero(t *testing.T) {
	dir := newStateDir(t)
	os.Remove(filepath.Join(dir, "history"))
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "history")); err != nil {
		t.Fatal(err)
	}
	out, exited := runRtmdUntilExit(t, dir, 256<<20)
	if exited && !strings.Contains(out, "history") {
		t.Errorf("rtmd on a history linked to /dev/zero: the error does not name the history file:\n%s", out)
	}
}

// TestAdvStateKeepsForeignFiles: rtmd removes only the leftovers of its
// own writes (history.tmp, snapshot-SEQ.tmp, journal-SEQ.new). Pointed at a
// directory that is not a state directory yet (a typo in -state, say
// -state /root, or a directory shared with other files), it must not
// delete other files whose names happen to end in .tmp or .new. Before the
// fix it removed every *.tmp and *.new in the directory (state.removeLeftovers).
func TestAdvStateKeepsForeignFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	foreign := map[string][]byte{"thesis.tmp": []byte("three years of work\n"), "sshd_config.new": []byte("PermitRootLogin no\n")}
	for name, b := range foreign {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := startRtmd(t, "-state", dir)
	d.mustRtm("route", "add", "192.0.2.0/24", "dev", "eth0")
	d.stop()
	for name, want := range foreign {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("file %s, not rtmd's, after rtmd used the directory: %q, %v; want it untouched", name, got, err)
		}
	}
}

// subscribeRaw connects to sock as a peer that never reads what it is
// sent, and subscribes: resuming after seq in rtmd's history if resume.
func subscribeRaw(t *testing.T, sock string, after uint64, resume bool) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "adv13"}))
	typ, p, err := wire.NewReaderSize(nc, 4096).ReadFrame()
	if err != nil || typ != wire.TWelcome || len(p) < wire.HistoryLen {
		t.Fatalf("welcome: frame type %d, %v", typ, err)
	}
	var h [wire.HistoryLen]byte
	copy(h[:], p[len(p)-wire.HistoryLen:])
	var body []byte
	if resume {
		body = wire.AppendResume(nil, h, after)
	}
	if _, err := nc.Write(wire.AppendRequest(nil, 0, wire.KSubscribe, body)); err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestAdvResumeMidTurnMemory: a subscriber that asks to resume after a
// sequence number in the middle of a big turn (a load's) made rtmd
// re-encode the rest of that turn, on its loop, into a copy of its own
// (window.since, suffix). A peer that may only subscribe (or a TCP
// subscriber) and never reads so pins a copy of the turn per connection,
// up to -backlog each and 256 connections per uid, where a subscriber
// that takes the table shares one frozen view. Here 40 such connections
// after a 200,000-route load held about 130 MiB in rtmd (and cost 6 times
// the CPU, on the loop, of 40 that take the table); the window now keeps
// Changes frames (64 KiB at most), so that a resume re-encodes at most
// one frame and shares the rest.
func TestAdvResumeMidTurnMemory(t *testing.T) {
	sock := filepath.Join(shortDir(t), "m.sock")
	d := startRtmd(t, "-socket", sock)
	file := filepath.Join(t.TempDir(), "routes")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	const n = 200000
	for i := range n {
		fmt.Fprintf(w, "10.%d.%d.%d/32 dev eth0\n", i>>16, i>>8&255, i&255)
	}
	w.Flush()
	f.Close()
	d.mustRtm("route", "add", "192.0.2.0/24", "dev", "eth0") // 1
	d.mustRtm("route", "load", file)                         // 2 to n+1, one turn
	const conns = 40
	table := subscribersGrowth(t, d, sock, conns, 2, false)
	resumed := subscribersGrowth(t, d, sock, conns, 2, true)
	t.Logf("rtmd's resident memory grew by %d MiB for %d subscribers that take the table, %d MiB for %d that resume after 2 (in a %d-change turn)", table>>20, conns, resumed>>20, conns, n)
	if resumed > 64<<20 {
		t.Errorf("%d subscribers that resume inside a big turn and do not read grew rtmd by %d MiB, want under 64 MiB (those that take the table: %d MiB)", conns, resumed>>20, table>>20)
	}
}

// startRtmdOnTmpfs starts rtmd with its state directory dir on a private
// tmpfs of size (mount(8)'s size=), in a mount namespace of its own.
func startRtmdOnTmpfs(t *testing.T, dir, size string, args ...string) *daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace and a tmpfs; running as uid", os.Geteuid()) // as TestStateNoSpace
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return startRtmdWith(t, func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs -o size=` + size + `,mode=0700 rtmtest "$0" && exec "$@"`, dir, cmd.Path}, cmd.Args[1:]...)
		cmd.Path, _ = exec.LookPath("unshare")
	}, append([]string{"-state", dir}, args...)...)
}

// fillDisk fills rtmd's tmpfs at dir (seen through its own mounts) and
// returns the file to remove to give the space back.
func fillDisk(t *testing.T, d *daemon, dir string) string {
	t.Helper()
	fill := filepath.Join(fmt.Sprintf("/proc/%d/root", d.cmd.Process.Pid), dir, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			// The last partial page too.
			for _, err := f.Write(buf[:4096]); err == nil; _, err = f.Write(buf[:4096]) {
			}
			return fill
		}
	}
}

// writeRoutes writes n /32 routes in route show form to a file.
func writeRoutes(t *testing.T, n int) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "routes")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "10.%d.%d.%d/32 dev eth0\n", i>>16, i>>8&255, i&255)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return file
}

// TestAdvNoSpaceResendsTable: on a full disk, a route change that cannot
// be stored was never published, so subscribers have nothing to undo; yet
// rtmd read its whole state back from disk (on its loop, which serves
// nobody meanwhile) and resent every subscriber the whole table, for
// each refused request. Measured: with 200,000 routes, 20 refused adds
// cost rtmd 1.8 s of CPU (90 ms each, growing with the table and the
// journal) and a Mirror 10 resets and 1.8 million events. A writer that
// retries on a full disk so keeps rtmd's loop busy and every subscriber
// re-taking the table. Undo now costs the turn (the changes' old
// values), not the table, and subscribers that were sent nothing of the
// turn (no MAC entry written to the segment) are not resent anything.
func TestAdvNoSpaceResendsTable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sock := filepath.Join(shortDir(t), "n.sock")
	d := startRtmdOnTmpfs(t, dir, "32m", "-socket", sock)
	const n = 20000
	d.mustRtm("route", "load", writeRoutes(t, n))
	var ev events
	m := &client.Mirror{Address: sock, OnEvent: ev.add}
	stop := runMirror(t, m, n)
	defer stop()
	fill := fillDisk(t, d, dir)
	defer os.Remove(fill)
	c := d.dial()
	defer c.Close()
	ctx := context.Background()
	add := func(i int) error {
		_, err := c.Add(ctx, client.Route{Table: client.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), 32),
			Type: client.Unicast, NextHops: []client.NextHop{{Dev: "eth0"}}})
		return err
	}
	i := 0
	var err error
	for ; i < 5000 && err == nil; i++ {
		err = add(i) // until the journal's last page is full
	}
	if err == nil || !strings.Contains(err.Error(), "not stored") {
		t.Fatalf("changes on a full disk: %v", err)
	}
	_, seq := d.table()
	if err := m.WaitSeq(ctx, seq); err != nil {
		t.Fatal(err)
	}
	ev.take()
	pid := d.cmd.Process.Pid
	before := cpuTicks(t, pid)
	for j := range 5 {
		if err := add(i + j); err == nil {
			t.Fatalf("add %d on a full disk succeeded", i+j)
		}
	}
	used := cpuTicks(t, pid) - before
	d.status() // a turn after the refusals
	time.Sleep(300 * time.Millisecond)
	resets, events := 0, ev.take()
	for _, e := range events {
		if strings.HasPrefix(e, "reset") {
			resets++
		}
	}
	t.Logf("5 refused adds with %d routes: rtmd used %d ms of CPU; the mirror had %d events, %d resets", n, used*10, len(events), resets)
	if resets > 0 {
		t.Errorf("5 route adds refused on a full disk (never published) made a subscriber take the table %d times (%d events)", resets, len(events))
	}
}

// TestAdvSaveSpecialFile: rtm save to a file that is not a regular file
// (a FIFO a backup tool reads, a device such as /dev/null or /dev/full,
// /dev/stdout) must write into it or refuse it, and leave it what it was.
// Before the fix rtm save wrote a temporary file next to it and renamed it
// over it: as root, `rtm save /dev/full` said "saved 1 routes ... to /dev/full",
// exit 0, and /dev/full was a regular file holding the routes (and so
// would /dev/null be, for every program on the host). Here a FIFO and (as
// root) a character device like /dev/null's, in a temporary directory.
func TestAdvSaveSpecialFile(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.1.0.0/16", "dev", "eth0")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader, so that a writer that opens the FIFO does not block.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	files := map[string]os.FileMode{fifo: os.ModeNamedPipe}
	if os.Geteuid() == 0 {
		null := filepath.Join(dir, "null")
		if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil { // /dev/null's numbers
			t.Fatal(err)
		}
		files[null] = os.ModeDevice | os.ModeCharDevice
	}
	for file, mode := range files {
		out, errs, code := d.rtm("", "save", file)
		st, err := os.Lstat(file)
		if err != nil || st.Mode().Type() != mode {
			t.Errorf("rtm save %s (exit %d, %q %q): it is now %v, %v; want it left a %v", filepath.Base(file), code, out, errs, st.Mode().Type(), err, mode)
		}
	}
}

// TestAdvStateLockRemoved: the lock that keeps a second rtmd off a state
// directory must hold even when its file is removed (an operator who
// thinks a stale "lock" is left by a dead rtmd, a clean-up script). Before
// the fix the lock was flock(2) on the file "lock": once it was unlinked a
// second rtmd made a new one, locked that, and both appended to the same journal;
// each acknowledges its own changes, and at the next start those of the
// first are gone (overwritten by the second's records, which read as
// valid): here 3 acknowledged adds were silently lost. rtmd now locks the
// directory itself (flock on an O_DIRECTORY descriptor).
func TestAdvStateLockRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a := startRtmd(t, "-state", dir)
	a.mustRtm("route", "add", "10.1.0.0/16", "dev", "eth0")
	if err := os.Remove(filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	out, exited := runRtmdUntilExitOrListening(t, dir)
	if !exited {
		// Both run: show what that costs.
		b := out.(*daemon)
		for i := range 3 {
			a.mustRtm("route", "add", fmt.Sprintf("10.2.%d.0/24", i), "dev", "eth0")
			b.mustRtm("route", "add", fmt.Sprintf("10.3.%d.0/24", i), "dev", "eth0")
		}
		a.stop()
		b.stop()
		c := startRtmd(t, "-state", dir)
		got, _ := c.table()
		t.Errorf("a second rtmd started on a state directory in use, once its lock file was removed; after both acknowledged 3 adds, a restart holds:\n%s", strings.Join(got, "\n"))
		return
	}
	if s := out.(string); !strings.Contains(s, "in use") {
		t.Errorf("the second rtmd exited, but not saying the directory is in use:\n%s", s)
	}
}

// runRtmdUntilExitOrListening starts rtmd on dir; if it exits within 10 s
// it returns its output (a string) and true, else the running *daemon and
// false.
func runRtmdUntilExitOrListening(t *testing.T, dir string) (any, bool) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "b.sock")
	var buf lockedBuffer
	cmd := exec.Command(filepath.Join(binDir, "rtmd"), "-socket", sock, "-mq", "off", "-no-console", "-state", dir)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return buf.String(), true
		default:
		}
		if nc, err := net.Dial("unix", sock); err == nil {
			nc.Close()
			// Running: hand it over as a daemon, stopped at the end.
			cmd.Process.Kill()
			<-done
			leftovers(sock)
			return startRtmd(t, "-socket", sock, "-state", dir), false
		}
	}
	cmd.Process.Kill()
	<-done
	t.Fatalf("second rtmd neither exited nor listened:\n%s", buf.String())
	return nil, false
}

// TestAdvResumeWindowBound: -resume-window bounds the memory the changes
// kept for resuming subscribers take. Before the fix the window counted
// each turn's bytes (len) but kept the buffer they were written in: a
// turn of one change is about 60 bytes in a 4 KiB buffer (wire.ChangeWriter
// starts each turn's buffer at 4 KiB), so under the churn of a routing
// daemon (a change or two per turn) the window held about 70 times its
// bound: 40,000 one-change turns with -resume-window 1 MiB grew rtmd by
// about 170 MiB (against 5 MiB with a window of 1 byte). The window now
// copies small frames side by side into chunks of its own and counts
// what it keeps.
func TestAdvResumeWindowBound(t *testing.T) {
	grow := func(window string) int64 {
		d := startRtmd(t, "-state", "none", "-resume-window", window)
		defer d.stop()
		pid := d.cmd.Process.Pid
		before := vmRSS(pid)
		var wg sync.WaitGroup
		for g := range 2 {
			c := d.dial()
			wg.Go(func() {
				ctx := context.Background()
				for i := range 20000 {
					p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}), 32)
					if _, err := c.Replace(ctx, client.Route{Table: client.TableMain, Dst: p, Type: client.Unicast, NextHops: []client.NextHop{{Dev: "eth0"}}}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return vmRSS(pid) - before
	}
	none, mib := grow("1"), grow("1048576")
	t.Logf("40,000 one-change turns grew rtmd by %d MiB with -resume-window 1, by %d MiB with -resume-window 1048576", none>>20, mib>>20)
	if mib-none > 32<<20 {
		t.Errorf("a 1 MiB resume window took %d MiB more than a window of 1 byte (%d MiB against %d MiB), want under 32 MiB more", (mib-none)>>20, mib>>20, none>>20)
	}
}

// TestAdvResumeManyTurnsMemory: a subscriber that resumes from the start
// of the window is sent every retained change. Before the fix rtmd built,
// per request and on its loop, a list with one entry per turn
// (window.since), which the connection held until the peer read: 100,000
// turns and 40 connections of a peer that resumes after 0 and never reads
// grew rtmd by about 400 MiB (10 MiB each), against about 12 MiB for 40
// that take the table. Frames that lie side by side in the window's
// chunks now go out as one buffer: a few entries per MiB.
func TestAdvResumeManyTurnsMemory(t *testing.T) {
	sock := filepath.Join(shortDir(t), "t.sock")
	d := startRtmd(t, "-socket", sock, "-state", "none")
	var wg sync.WaitGroup
	for g := range 2 {
		c := d.dial()
		wg.Go(func() {
			ctx := context.Background()
			for i := range 50000 {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}), 32)
				if _, err := c.Replace(ctx, client.Route{Table: client.TableMain, Dst: p, Type: client.Unicast, NextHops: []client.NextHop{{Dev: "eth0"}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	const conns = 40
	table := subscribersGrowth(t, d, sock, conns, 0, false)
	resumed := subscribersGrowth(t, d, sock, conns, 0, true)
	t.Logf("rtmd's resident memory grew by %d MiB for %d subscribers that take the table, %d MiB for %d that resume after 0 (100,000 turns)", table>>20, conns, resumed>>20, conns)
	if resumed > table+48<<20 {
		t.Errorf("%d subscribers that resume from the window's start and do not read grew rtmd by %d MiB, want under 48 MiB more than %d that take the table (%d MiB)", conns, resumed>>20, conns, table>>20)
	}
}

// TestAdvResumeAfterRestoredState: a state directory restored from a copy
// (a backup of /var/lib/rtm, a VM or file-system snapshot rolled back)
// has the same history id and an older sequence number. Before the fix,
// once writers had taken rtmd past the sequence number a Mirror held, the
// Mirror resumed (same history, its number within the window) and
// silently kept the changes rtmd lost, with only rtmd's new ones on top.
// Now each start of rtmd is a run, and the directory records where each
// run ended: the copy ends the Mirror's run before the Mirror's number,
// so the Mirror takes the table, told that it is another history.
func TestAdvResumeAfterRestoredState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	backup := filepath.Join(t.TempDir(), "backup")
	sock := filepath.Join(shortDir(t), "r.sock")
	d := startRtmd(t, "-socket", sock, "-state", dir)
	for i := range 3 {
		d.mustRtm("route", "add", fmt.Sprintf("10.1.%d.0/24", i), "dev", "eth0")
	}
	d.stop()
	if out, err := exec.Command("cp", "-a", dir, backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	os.Remove(filepath.Join(backup, "lock"))
	d = startRtmd(t, "-socket", sock, "-state", dir)
	m := &client.Mirror{Address: sock}
	stop := runMirror(t, m, 3)
	for i := range 3 {
		d.mustRtm("route", "add", fmt.Sprintf("10.2.%d.0/24", i), "dev", "eth0") // 4 to 6: lost with the restore
	}
	if err := m.WaitSeq(context.Background(), 6); err != nil {
		t.Fatal(err)
	}
	stop()
	d.stop()
	// The restore, then the writers come back before the mirror does.
	os.RemoveAll(dir)
	if err := os.Rename(backup, dir); err != nil {
		t.Fatal(err)
	}
	d = startRtmd(t, "-socket", sock, "-state", dir)
	for i := range 5 {
		d.mustRtm("route", "add", fmt.Sprintf("10.3.%d.0/24", i), "dev", "eth0") // 4 to 8
	}
	want, seq := d.table()
	stop = runMirror(t, m, seq)
	defer stop()
	var got []string
	for _, r := range m.Routes() {
		got = append(got, r.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("a mirror that resumed on a restored state directory holds %d routes, rtmd %d:\n%s", len(got), len(want), diff(got, want))
	}
}

// subscribersGrowth returns how much rtmd's resident memory grows when
// conns peers subscribe (resuming after seq, with resume) and never read.
func subscribersGrowth(t *testing.T, d *daemon, sock string, conns int, after uint64, resume bool) int64 {
	t.Helper()
	before := vmRSS(d.cmd.Process.Pid)
	for range conns {
		subscribeRaw(t, sock, after, resume)
	}
	// Wait until rtmd has answered them all (a status is answered after
	// the subscriptions it read before it).
	d.status()
	time.Sleep(200 * time.Millisecond)
	return vmRSS(d.cmd.Process.Pid) - before
}
