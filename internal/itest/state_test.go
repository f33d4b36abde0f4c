package itest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
)

// kill stops rtmd with SIGKILL, as a crash would, and removes what it
// leaves behind (its socket, queue and segment; not its state).
func (d *daemon) kill() {
	d.once.Do(func() {
		d.cmd.Process.Kill()
		<-d.done
		leftovers(d.socket)
	})
}

// TestStateRestart: rtmd stopped (SIGTERM) or killed (SIGKILL) comes back
// with the same routes, MAC entries and sequence number, and goes on from
// there.
func TestStateRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			d := startRtmd(t, "-state", dir)
			c := d.dial()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(13, uint64(sig)))
			for i := range 600 {
				if i == 300 {
					d.mustRtm("flush", "all")
				}
				r := randRoute(rng)
				switch rng.IntN(5) {
				case 0:
					c.Add(ctx, r)
				case 1, 2:
					c.Replace(ctx, r)
				case 3:
					c.Delete(ctx, r.Table, r.Dst)
				case 4:
					c.ReplaceMAC(ctx, client.MACEntry{MAC: testMAC(rng.IntN(20)), IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Dev: "eth0"})
				}
			}
			want, seq := d.tables()
			c.Close()
			if sig == syscall.SIGKILL {
				d.kill()
			} else {
				d.stop()
			}
			d2 := startRtmd(t, "-state", dir)
			got, seq2 := d2.tables()
			if seq2 != seq || !slices.Equal(got, want) {
				t.Fatalf("after the restart: seq %d (want %d), %d lines (want %d)\n%s", seq2, seq, len(got), len(want), diff(got, want))
			}
			d2.mustRtm("route", "add", "192.0.2.0/24", "dev", "eth9")
			st := d2.status()
			if st.Seq != seq+1 {
				t.Errorf("the next change has seq %d, want %d", st.Seq, seq+1)
			}
			if st.State == nil || st.State.Dir != dir || st.State.Commits != 1 || st.State.JournalBytes == 0 || st.State.FsyncP50 <= 0 {
				t.Errorf("status of the state: %+v", st.State)
			}
			if out := d2.mustRtm("status"); !strings.Contains(out, "state "+dir+": journal ") {
				t.Errorf("rtm status says nothing of the state:\n%s", out)
			}
		})
	}
}

// TestStateLocked: a second rtmd on the same state directory is refused.
func TestStateLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d := startRtmd(t, "-state", dir)
	out, err := exec.Command(filepath.Join(binDir, "rtmd"), "-socket", filepath.Join(shortDir(t), "b.sock"), "-mq", "off", "-no-console", "-state", dir).CombinedOutput()
	want := fmt.Sprintf("state directory %s is in use by another rtmd (pid %d)", dir, d.cmd.Process.Pid)
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("second rtmd: %v\n%s\nwant %q", err, out, want)
	}
}

// TestStateDamage: a torn last record is cut off and logged; a flipped
// byte before the end makes rtmd refuse to start, naming the file and the
// offset, and -state-repair starts from what comes before it.
func TestStateDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d := startRtmd(t, "-state", dir)
	for i := range 50 {
		d.mustRtm("route", "add", fmt.Sprintf("10.%d.0.0/16", i), "via", "192.0.2.1", "dev", "eth0")
	}
	want, _ := d.tables()
	d.stop()
	journal := filepath.Join(dir, "journal-0000000000000000")
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3}) // half a record: a crash mid-write
	f.Close()

	d = startRtmd(t, "-state", dir)
	if got, _ := d.tables(); !slices.Equal(got, want) {
		t.Fatalf("after a torn tail:\n%s", diff(got, want))
	}
	if !strings.Contains(d.stderr.String(), "cut off a torn last commit") {
		t.Errorf("the torn tail is not logged:\n%s", d.stderr)
	}
	d.stop()

	b, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	os.WriteFile(journal, b, 0o600)
	out, err := exec.Command(filepath.Join(binDir, "rtmd"), "-socket", filepath.Join(shortDir(t), "b.sock"), "-mq", "off", "-no-console", "-state", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), journal) || !strings.Contains(string(out), "offset") || !strings.Contains(string(out), "-state-repair") {
		t.Fatalf("rtmd on a damaged journal: %v\n%s", err, out)
	}
	d = startRtmd(t, "-state", dir, "-state-repair")
	got, seq := d.tables()
	if len(got) == 0 || len(got) >= len(want) || !slices.Equal(got, want[:len(got)]) || seq != uint64(len(got)) {
		t.Errorf("after -state-repair: %d routes at seq %d, want a prefix of the %d", len(got), seq, len(want))
	}
	if !strings.Contains(d.stderr.String(), "-state-repair: cut off damage") {
		t.Errorf("the repair is not logged:\n%s", d.stderr)
	}
}

// TestStateCrashConsistency: rtmd is killed (SIGKILL) at seeded moments
// while several writers change routes one at a time, and during a big
// load, while it writes snapshots. After each restart every change a writer was told is done is
// there, the sequence number did not go back, and a subscriber that was
// connected all along holds rtmd's table.
func TestStateCrashConsistency(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	file := filepath.Join(t.TempDir(), "load.routes")
	var lines strings.Builder
	for i := range 200_000 {
		fmt.Fprintf(&lines, "%d.%d.%d.0/24 via 192.0.2.1 dev eth0\n", 100+i>>16, i>>8&255, i&255) // 100.0.0.0/24 to 103.13.63.0/24
	}
	os.WriteFile(file, []byte(lines.String()), 0o600)
	rng := rand.New(rand.NewPCG(20, 26))
	acked := map[netip.Prefix]bool{} // routes whose add was acknowledged and not deleted since
	var lastSeq uint64
	loaded := false
	// A subscriber that stays through every crash, resuming (or, after a
	// load, resyncing) each time.
	sock := filepath.Join(shortDir(t), "c.sock")
	var ev events
	m := &client.Mirror{Address: sock, OnEvent: ev.add}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); m.Run(mctx) }()
	defer func() { mcancel(); <-mdone }()
	started, compactions := 0, 0
	for point := range 20 {
		// A small -state-compact: snapshots are written all along, and
		// some kills come in the middle of one.
		d := startRtmd(t, "-socket", sock, "-state", dir, "-state-compact", "262144")
		st := d.status()
		if st.Seq < lastSeq {
			t.Fatalf("point %d: seq went back from %d to %d", point, lastSeq, st.Seq)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := m.WaitSeq(wctx, st.Seq)
		wcancel()
		if err != nil {
			t.Fatalf("point %d: the subscriber did not reach %d: %v", point, st.Seq, err)
		}
		if got, _ := d.table(); m.Len() != len(got) {
			t.Fatalf("point %d: the subscriber holds %d routes, rtmd %d", point, m.Len(), len(got))
		}
		// What was acknowledged is there.
		have := map[string]bool{}
		got, _ := d.table()
		for _, l := range got {
			dst := strings.Fields(l)[0] // a host route is printed without /32
			if !strings.Contains(dst, "/") {
				dst += "/32"
			}
			have[dst] = true
		}
		for p := range acked {
			if !have[p.String()] {
				t.Fatalf("point %d: %v was acknowledged and is gone after the restart", point, p)
			}
		}
		if loaded && (!have["100.0.0.0/24"] || !have["103.13.63.0/24"]) {
			t.Fatalf("point %d: an acknowledged load is gone", point)
		}
		if n := countLoaded(have); n != 0 && n != 200_000 {
			t.Fatalf("point %d: %d routes of a load of 200,000: one commit came back in part", point, n)
		}
		if n := len(got); n != len(acked)+countLoaded(have) {
			t.Logf("point %d: %d routes (%d acknowledged, the rest were in flight)", point, n, len(acked))
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		loadDone := make(chan struct{})
		if point%5 == 4 { // a big load, killed at some point of it
			wg.Go(func() {
				defer close(loadDone)
				if _, _, code := d.rtm("", "route", "load", file); code == 0 {
					mu.Lock()
					loaded = true
					mu.Unlock()
				}
			})
		}
		for w := range 3 {
			wg.Go(func() {
				c, err := client.Dial(ctx, d.socket)
				if err != nil {
					return
				}
				defer c.Close()
				for i := 0; ctx.Err() == nil; i++ {
					p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(point), byte(w), byte(i)}), 32)
					r := client.Route{Table: client.TableMain, Dst: p, Type: client.Unicast, NextHops: []client.NextHop{{Dev: "eth0"}}}
					if _, err := c.Replace(ctx, r); err != nil {
						return
					}
					mu.Lock()
					acked[p] = true
					mu.Unlock()
				}
			})
		}
		if point%10 == 9 {
			// Killed after the load, while the snapshot it makes due
			// is perhaps being written.
			<-loadDone
			time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		}
		st = d.status()
		d.kill()
		cancel()
		wg.Wait()
		lastSeq = st.Seq
		started += strings.Count(d.stderr.String(), "state compaction: writing a snapshot")
		compactions += strings.Count(d.stderr.String(), "state compacted")
	}
	if started == 0 {
		t.Error("no compaction started, though a load made the journal outgrow -state-compact") // how many a kill met is up to timing: TestCompactionCrashPoints has every step
	}
	resumed, resets := 0, 0
	for _, e := range ev.take() {
		switch {
		case strings.HasPrefix(e, "resumed@"):
			resumed++
		case strings.HasPrefix(e, "reset"):
			resets++
		}
	}
	t.Logf("the subscriber resumed %d times and took the table %d times; %d snapshots were started, %d finished", resumed, resets, started, compactions)
	if resumed == 0 {
		t.Error("the subscriber never resumed")
	}
}

func countLoaded(have map[string]bool) int {
	n := 0
	for p := range have {
		if p >= "100." && p < "104." {
			n++
		}
	}
	return n
}

// TestStateNoSpace: on a full file system a change is refused with the
// cause, reads go on, and once there is room again changes succeed; no
// acknowledged change is lost. rtmd runs in a mount namespace of its own
// with its state on a small tmpfs, which the test fills through
// /proc/PID/root.
func TestStateNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace and a tmpfs; running as uid", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	d := startRtmdWith(t, func(cmd *exec.Cmd) {
		// unshare -m: the tmpfs is rtmd's alone, and goes with it.
		cmd.Args = append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs -o size=256k,mode=0700 rtmtest "$0" && exec "$@"`, dir, cmd.Path}, cmd.Args[1:]...)
		cmd.Path, _ = exec.LookPath("unshare")
	}, "-state", dir)
	ctx := context.Background()
	c := d.dial()
	add := func(i int) error {
		_, err := c.Add(ctx, client.Route{Table: client.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32),
			Type: client.Unicast, NextHops: []client.NextHop{{Dev: "eth0"}}})
		return err
	}
	for i := range 10 {
		if err := add(i); err != nil {
			t.Fatal(err)
		}
	}
	// Fill the tmpfs (through rtmd's own view of its mounts).
	fill := filepath.Join(fmt.Sprintf("/proc/%d/root", d.cmd.Process.Pid), dir, "fill")
	if err := os.WriteFile(fill, make([]byte, 1<<20), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling rtmd's tmpfs: %v", err)
	}
	// The journal's last page has room for a few records still.
	n := 10
	var err error
	for ; n < 1000; n++ {
		if err = add(n); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "not stored") {
		t.Fatalf("changes on a full disk: %v", err)
	}
	if lines, seq := d.table(); len(lines) != n || seq != uint64(n) {
		t.Errorf("reads on a full disk: %d routes at seq %d, want the %d stored", len(lines), seq, n)
	}
	os.Remove(fill)
	for i := n; i < n+10; i++ {
		if err := add(i); err != nil {
			t.Fatalf("after the disk has room again: %v", err)
		}
	}
	want, seq := d.tables()
	c.Close()
	// The sequence numbers have no gap: the refused change was undone.
	if seq != uint64(n+10) || len(want) != n+10 {
		t.Errorf("at the end: %d routes at seq %d, want %d", len(want), seq, n+10)
	}
	// Read back by a new rtmd, in the same namespace: nothing acknowledged
	// is lost. (The tmpfs goes with rtmd's namespace, so it is read back
	// through a copy of the journal.)
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", filepath.Join(fmt.Sprintf("/proc/%d/root", d.cmd.Process.Pid), dir), copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copying the state: %v %s", err, out)
	}
	d.kill()
	os.Remove(filepath.Join(copyDir, "lock"))
	d2 := startRtmd(t, "-state", copyDir)
	if got, seq2 := d2.tables(); seq2 != seq || !slices.Equal(got, want) {
		t.Errorf("read back: seq %d (want %d)\n%s", seq2, seq, diff(got, want))
	}
}

// TestStateCompaction: with a small -state-compact, rtmd replaces its
// journal by snapshots while changes go on; killed, it comes back from the
// newest snapshot and the journal after it with every table, the sequence
// number and the MAC entries in their slots (a Mirror that resumes reads
// the right IPs from the new segment), and the files a snapshot replaced
// are gone.
func TestStateCompaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sock := filepath.Join(shortDir(t), "k.sock")
	d := startRtmd(t, "-socket", sock, "-state", dir, "-state-compact", "4096")
	var ev events
	m := &client.Mirror{Address: sock, OnEvent: ev.add}
	stop := runMirror(t, m, 0)
	c := d.dial()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range 3000 {
		r := randRoute(rng)
		var err error
		switch rng.IntN(6) {
		case 0, 1:
			_, err = c.Replace(ctx, r)
		case 2:
			c.Delete(ctx, r.Table, r.Dst) // may not be there
		case 3, 4:
			_, err = c.ReplaceMAC(ctx, client.MACEntry{MAC: testMAC(rng.IntN(300)), IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Dev: "eth0"})
		case 5:
			c.DeleteMAC(ctx, testMAC(rng.IntN(300)))
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	c.Close()
	st := d.status()
	if st.State.SnapshotTime == "" || st.State.SnapshotSeq == 0 || st.State.SnapshotBytes == 0 || st.State.SnapshotError != "" {
		t.Fatalf("no snapshot after 3,000 changes with -state-compact 4096: %+v", st.State)
	}
	if n := strings.Count(d.stderr.String(), "state compacted"); n < 2 {
		t.Errorf("%d compactions logged, want several:\n%s", n, d.stderr)
	}
	if out := d.mustRtm("status"); !strings.Contains(out, "snapshot at sequence ") {
		t.Errorf("rtm status says nothing of the snapshot:\n%s", out)
	}
	want, seq := d.tables()
	if err := m.WaitSeq(ctx, seq); err != nil {
		t.Fatal(err)
	}
	stop()
	d.kill()

	d = startRtmd(t, "-socket", sock, "-state", dir, "-state-compact", "4096")
	got, seq2 := d.tables()
	if seq2 != seq || !slices.Equal(got, want) {
		t.Fatalf("after the restart: seq %d (want %d), %d lines (want %d)\n%s", seq2, seq, len(got), len(want), diff(got, want))
	}
	var snaps, journals []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), "snapshot-"):
			snaps = append(snaps, e.Name())
		case strings.HasPrefix(e.Name(), "journal-"):
			journals = append(journals, e.Name())
		}
	}
	if len(snaps) != 1 || len(journals) == 0 || len(journals) > 2 {
		t.Errorf("state directory after the restart: snapshots %q, journals %q; want the newest snapshot and the journals after it", snaps, journals)
	}
	ev.take()
	d.mustRtm("mac", "replace", testMAC(1).String(), "10.2.0.1", "dev", "eth0")
	stop = runMirror(t, m, seq+1)
	defer stop()
	if got := ev.take(); len(got) == 0 || got[0] != fmt.Sprintf("resumed@%d", seq) {
		t.Errorf("the mirror across the restart: %q, want it to resume at %d", got, seq)
	}
	gotMACs := m.MACEntries()
	c = d.dial()
	defer c.Close()
	wantMACs, _, err := c.MACSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotMACs, wantMACs) {
		t.Errorf("the resumed mirror's MAC table (IPs read through its slots) differs from rtmd's:\n got %v\nwant %v", gotMACs, wantMACs)
	}
}

// events records a Mirror's events as text, and lets a test wait for a
// number of them.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(ev client.Event) {
	s := ev.Kind.String()
	switch {
	case ev.Resumed:
		s = "resumed"
	case ev.History:
		s = "reset history"
	case ev.Kind == client.Add:
		s += " " + ev.Route.Dst.String()
	}
	e.mu.Lock()
	e.list = append(e.list, fmt.Sprintf("%s@%d", s, ev.Seq))
	e.mu.Unlock()
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.list
	e.list = nil
	return l
}

// runMirror runs m until the returned function is called.
func runMirror(t *testing.T, m *client.Mirror, seq uint64) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := m.WaitSeq(wctx, seq); err != nil {
		cancel()
		<-done
		t.Fatalf("mirror did not reach %d: %v", seq, err)
	}
	return func() {
		cancel()
		<-done
	}
}

// TestResume: a Mirror that reconnects, to the same rtmd or to one
// restarted on the same state, receives only the changes it missed
// (Resumed, then those changes: no table); one further behind than
// -resume-window gets the table; and one whose rtmd comes back without
// its state sees a reset with the reason.
func TestResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sock := filepath.Join(shortDir(t), "r.sock")
	add := func(d *daemon, i int) {
		d.mustRtm("route", "add", fmt.Sprintf("10.9.%d.0/24", i), "dev", "eth0")
	}
	d := startRtmd(t, "-socket", sock, "-state", dir)
	for i := range 3 {
		add(d, i)
	}
	var ev events
	m := &client.Mirror{Address: sock, OnEvent: ev.add}
	stop := runMirror(t, m, 3)
	stop()
	ev.take()

	// Missed changes, from the same rtmd.
	add(d, 3)
	add(d, 4)
	stop = runMirror(t, m, 5)
	stop()
	if got, want := ev.take(), []string{"resumed@3", "add 10.9.3.0/24@4", "add 10.9.4.0/24@5"}; !slices.Equal(got, want) {
		t.Errorf("resuming from the same rtmd: %q, want %q", got, want)
	}

	// Missed changes, across a crash: the window is read back.
	add(d, 5)
	d.kill()
	d = startRtmd(t, "-socket", sock, "-state", dir)
	add(d, 6)
	stop = runMirror(t, m, 7)
	stop()
	if got, want := ev.take(), []string{"resumed@5", "add 10.9.5.0/24@6", "add 10.9.6.0/24@7"}; !slices.Equal(got, want) {
		t.Errorf("resuming across a restart: %q, want %q", got, want)
	}
	if lines, _ := d.table(); len(lines) != m.Len() {
		t.Errorf("mirror holds %d routes, rtmd %d", m.Len(), len(lines))
	}

	// Further behind than the window: the table.
	d.stop()
	d = startRtmd(t, "-socket", sock, "-state", dir, "-resume-window", "1")
	add(d, 7)
	add(d, 8)
	stop = runMirror(t, m, 9)
	stop()
	if got := ev.take(); len(got) == 0 || got[0] != "reset@9" || got[len(got)-1] != "synced@9" {
		t.Errorf("resuming beyond the window: %q, want a reset and the table", got)
	}

	// rtmd without its state: another history.
	d.stop()
	d = startRtmd(t, "-socket", sock, "-state", "none")
	stop = runMirror(t, m, 0)
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); m.Len() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mirror kept the old table")
		}
	}
	if got := ev.take(); len(got) == 0 || got[0] != "reset history@0" {
		t.Errorf("rtmd back without its state: %q, want a reset for the history first", got)
	}
}

// TestSave: rtm save writes every route, of every table, in the form route
// load reads back.
func TestSave(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.1.0.0/16", "via", "192.0.2.1", "dev", "eth0", "metric", "5")
	d.mustRtm("route", "add", "10.2.0.0/16", "table", "100", "nexthop", "via", "192.0.2.1", "dev", "eth0", "nexthop", "via", "192.0.2.2", "dev", "eth1")
	d.mustRtm("route", "add", "2001:db8::/32", "dev", "eth0")
	d.mustRtm("route", "add", "blackhole", "10.3.0.0/16")
	want, _ := d.table()
	file := filepath.Join(t.TempDir(), "routes")
	if out := d.mustRtm("save", file); !strings.Contains(out, "saved 4 routes at sequence 4 to "+file) {
		t.Errorf("rtm save: %q", out)
	}
	d2 := startRtmd(t)
	d2.mustRtm("route", "load", file)
	if got, _ := d2.table(); !slices.Equal(got, want) {
		t.Errorf("saved and loaded:\n%s", diff(got, want))
	}
	if _, errs, code := d.rtm("", "save", filepath.Join(t.TempDir(), "no", "such", "dir", "f")); code == 0 || !strings.Contains(errs, "save") {
		t.Errorf("save into a missing directory: exit %d, %q", code, errs)
	}
}
