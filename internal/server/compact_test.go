package server

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/snapshot"
	"github.com/rtm-project/rtm/internal/wire"
)

// stateRun drives a persist as the loop does: commits of changes, and a
// model of what the directory must read back as.
type stateRun struct {
	t    *testing.T
	p    *persist
	want *recovered
	n    int
}

func newStateRun(t *testing.T) *stateRun {
	p, _, err := openPersist(filepath.Join(t.TempDir(), "state"), false, 1<<20, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return &stateRun{t: t, p: p, want: &recovered{macs: map[mac.Addr]macEntry{}}}
}

// commit stores n changes in one commit: route adds, some deletes, and MAC
// entries in slots out of MAC order.
func (r *stateRun) commit(n int) {
	var cw wire.ChangeWriter
	for range n {
		i := r.n
		r.n++
		c := wire.Change{Seq: r.want.seq + 1, Op: wire.OpAdd}
		rt, _, err := route.ParseLine(fmt.Sprintf("10.%d.%d.0/24 via 192.0.2.%d dev eth%d", i>>8&255, i&255, i%7+1, i%3))
		if err != nil {
			r.t.Fatal(err)
		}
		c.Route = rt
		switch {
		case i%10 == 9:
			c.Op = wire.OpMACAdd
			c.MAC, c.Slot, c.IP, c.Dev = mac.Addr{2, 0, 0, 0, byte(i >> 8), byte(i)}, uint32(1000-i%1000), netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), "eth0"
			cw.AddMAC(c.Seq, c.Op, c.MAC, c.Slot, c.IP, c.Dev)
		case i%10 == 5 && i > 20:
			c.Op = wire.OpDel
			c.Route, _, _ = route.ParseLine(fmt.Sprintf("10.%d.%d.0/24 dev eth0", (i-20)>>8&255, (i-20)&255))
			cw.Add(c.Seq, c.Op, c.Route)
		default:
			cw.Add(c.Seq, c.Op, c.Route)
		}
		r.want.apply(&c)
	}
	if err := r.p.commit(cw.Take()); err != nil {
		r.t.Fatal(err)
	}
}

// snapshot writes the snapshot at the current state, as a compaction's
// goroutine does.
func (r *stateRun) snapshot() {
	seq := r.want.seq
	macs := (&macTable{entries: r.want.macs}).stored()
	if _, err := snapshot.Write(r.p.dir.SnapshotPath(seq), snapshot.Header{History: r.p.dir.History, Seq: seq}, r.want.table.All(), macs); err != nil {
		r.t.Fatal(err)
	}
}

// copyState copies the state directory, as a crash would leave it (but
// for the lock, which the copy does not need to take from r.p).
func (r *stateRun) copyState() string {
	cp := filepath.Join(r.t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", r.p.dir.Path, cp).CombinedOutput(); err != nil {
		r.t.Fatalf("cp: %v: %s", err, out)
	}
	return cp
}

// check reads a copy of the state directory back: it must hold the state
// of the last commit.
func (r *stateRun) check(point string) {
	r.t.Helper()
	q, got, err := openPersist(r.copyState(), false, 1<<20, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatalf("%s: the state does not read back: %v", point, err)
	}
	defer q.close()
	if got.seq != r.want.seq {
		r.t.Fatalf("%s: seq %d, want %d", point, got.seq, r.want.seq)
	}
	if g, w := slices.Collect(got.table.All()), slices.Collect(r.want.table.All()); !slices.EqualFunc(g, w, func(a, b route.Route) bool { return a.Equal(&b) }) {
		r.t.Fatalf("%s: %d routes read back, want %d", point, len(g), len(w))
	}
	if !maps.Equal(got.macs, r.want.macs) {
		r.t.Fatalf("%s: MAC entries (with slots) differ: %d read back, want %d", point, len(got.macs), len(r.want.macs))
	}
	if got.lost != "" {
		r.t.Fatalf("%s: lost %s", point, got.lost)
	}
}

// TestCompactionCrashPoints: a compaction is a sequence of file operations
// (a new journal, a temporary snapshot, its rename, the removal of what it
// replaces); the state directory as a crash leaves it after each of them
// reads back as the state of the last commit.
func TestCompactionCrashPoints(t *testing.T) {
	r := newStateRun(t)
	r.commit(300)
	r.commit(1)
	r.check("before")
	for round := range 2 {
		at := func(s string) string { return fmt.Sprintf("round %d: %s", round, s) }
		seq := r.want.seq
		view, macs := r.want.table.Freeze(), (&macTable{entries: maps.Clone(r.want.macs)}).stored()
		if err := r.p.rotate(seq); err != nil {
			t.Fatal(err)
		}
		r.check(at("new journal"))
		r.commit(40)
		r.check(at("new journal with commits"))
		tmp := r.p.dir.SnapshotPath(seq) + ".tmp"
		os.WriteFile(tmp, []byte(snapshot.Magic+"half a snapshot"), 0o600)
		r.check(at("half a snapshot"))
		os.Remove(tmp)
		if _, err := snapshot.Write(r.p.dir.SnapshotPath(seq), snapshot.Header{History: r.p.dir.History, Seq: seq}, view.All(), macs); err != nil {
			t.Fatal(err)
		}
		r.check(at("snapshot written"))
		snaps, journals, _ := r.p.dir.Files()
		for _, n := range snaps {
			if n < seq {
				os.Remove(r.p.dir.SnapshotPath(n))
				r.check(at(fmt.Sprintf("older snapshot %d removed", n)))
			}
		}
		for _, n := range journals {
			if n < seq {
				os.Remove(r.p.dir.JournalPath(n))
				r.check(at(fmt.Sprintf("journal %d removed", n)))
			}
		}
		r.commit(25)
		r.check(at("after"))
	}
}

// TestDamagedSnapshot: a damaged newest snapshot refuses the start, naming
// the file; -state-repair sets it aside and, while the journals it
// replaced are still there, loses nothing; when they are gone, it starts
// from the journals' end before the snapshot under a new history.
func TestDamagedSnapshot(t *testing.T) {
	r := newStateRun(t)
	r.commit(200)
	seq := r.want.seq
	if err := r.p.rotate(seq); err != nil {
		t.Fatal(err)
	}
	r.snapshot()
	r.commit(10)
	damage := func() string {
		cp := r.copyState()
		path := filepath.Join(cp, filepath.Base(r.p.dir.SnapshotPath(seq)))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		os.WriteFile(path, b, 0o600)
		_, _, err = openPersist(cp, false, 1<<20, 1, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "-state-repair") {
			t.Fatalf("a damaged snapshot: %v", err)
		}
		return cp
	}

	cp := damage()
	q, got, err := openPersist(cp, true, 1<<20, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got.seq != r.want.seq || got.table.Len() != r.want.table.Len() || !maps.Equal(got.macs, r.want.macs) || got.lost != "" || q.dir.History != r.p.dir.History {
		t.Errorf("repaired with the journals there: seq %d (want %d), %d routes (want %d), lost %q", got.seq, r.want.seq, got.table.Len(), r.want.table.Len(), got.lost)
	}
	if _, err := os.Stat(q.dir.SnapshotPath(seq) + ".damaged"); err != nil {
		t.Errorf("the damaged snapshot is not kept aside: %v", err)
	}
	q.close()

	r.p.prune(seq) // the journals before the snapshot go
	cp = damage()
	q, got, err = openPersist(cp, true, 1<<20, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if got.lost == "" || q.dir.History == r.p.dir.History {
		t.Errorf("repaired without the journals: lost %q, history %x (was %x): want a loss and a new history", got.lost, q.dir.History, r.p.dir.History)
	}

	// A repair cut short after it wrote its snapshot under the new history:
	// refused without -state-repair, completed with it.
	cp = r.copyState()
	other := r.p.dir.History
	other[0] ^= 1
	seq = r.want.seq
	if _, err := snapshot.Write(filepath.Join(cp, filepath.Base(r.p.dir.SnapshotPath(seq))), snapshot.Header{History: other, Seq: seq}, r.want.table.All(), (&macTable{entries: r.want.macs}).stored()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openPersist(cp, false, 1<<20, 1, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("a repair cut short: %v", err)
	}
	q2, got, err := openPersist(cp, true, 1<<20, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer q2.close()
	snaps, journals, _ := q2.dir.Files()
	if got.seq != seq || !maps.Equal(got.macs, r.want.macs) || q2.dir.History == r.p.dir.History || !slices.Equal(snaps, []uint64{seq}) || !slices.Equal(journals, []uint64{seq}) {
		t.Errorf("repair completed: seq %d (want %d), history %x, snapshots %v, journals %v", got.seq, seq, q2.dir.History, snaps, journals)
	}
}
