package server

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/rtm-project/rtm/internal/journal"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/snapshot"
	"github.com/rtm-project/rtm/internal/state"
	"github.com/rtm-project/rtm/internal/wire"
)

// persist is the state directory rtmd keeps its tables in (docs/state.md):
// every turn's changes go to the journal, fsynced, before they are
// published or acknowledged; now and then a snapshot replaces the journals
// (compact.go).
type persist struct {
	dir  *state.Dir
	w    *journal.Writer
	log  *slog.Logger
	lat  []time.Duration // the last commits' latencies, a ring
	next int
	n    uint64 // commits
	last error  // the last failed commit's error

	older      int64 // the size of the journals before p.w's that no snapshot replaces yet
	compactMin int64 // the journal size below which rtmd never compacts
	compacting bool  // a snapshot is being written
	retryAt    time.Time
	snapSeq    uint64 // the newest snapshot: its sequence number, size and time
	snapSize   int64
	snapAt     time.Time
	snapErr    error // the last failed compaction's error
}

// recovered is the state read back at start.
type recovered struct {
	table  route.Table
	macs   map[mac.Addr]macEntry // with the slots rtmd had them in
	seq    uint64
	window window // the last changes, for subscribers that resume
	lost   string // with -state-repair: what could not be read back, or ""
	// foreign: with -state-repair, files of another history were read (a
	// repair cut short); the state needs a new history as after a loss.
	foreign bool
}

// openPersist opens the state directory at path and reads its state back:
// the newest snapshot, then the journals after it. A torn tail of the last
// journal (a crash in the middle of a write) is cut off and logged; damage
// anywhere else is an error naming the file and offset, unless repair is
// set, which keeps what comes before the damage, logs what is lost, and
// starts a new history (subscribers may hold changes that are lost).
func openPersist(path string, repair bool, window int, compactMin int64, log *slog.Logger) (*persist, *recovered, error) {
	dir, err := state.Open(path)
	if err != nil {
		return nil, nil, err
	}
	p := &persist{dir: dir, log: log, compactMin: compactMin}
	if len(dir.Removed) > 0 {
		log.Info("state directory: removed files a crash left half written", "files", dir.Removed)
	}
	rec, err := p.recover(repair, window)
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	return p, rec, nil
}

// recover reads the state back and opens the last journal for appending
// (or makes one after the state read).
func (p *persist) recover(repair bool, window int) (*recovered, error) {
	rec, journals, err := p.read(repair, window)
	if err != nil {
		return nil, err
	}
	if rec.lost != "" || rec.foreign {
		return rec, p.rebase(rec)
	}
	if removed, err := p.prune(p.snapSeq); err != nil {
		p.log.Warn("state directory: removing files a snapshot replaced", "err", err)
	} else if len(removed) > 0 {
		p.log.Info("state directory: removed files a snapshot replaced", "files", removed)
	}
	if len(journals) == 0 || journals[len(journals)-1] < p.snapSeq {
		p.w, err = journal.Create(p.dir.JournalPath(rec.seq), journal.Header{History: p.dir.History, Seq: rec.seq})
	} else {
		for _, n := range journals[:len(journals)-1] {
			if st, err := os.Stat(p.dir.JournalPath(n)); err == nil && n >= p.snapSeq {
				p.older += st.Size()
			}
		}
		p.w, err = journal.OpenAppend(p.dir.JournalPath(journals[len(journals)-1]))
	}
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", p.dir.Path, err)
	}
	return rec, nil
}

// rebase starts a new history from rec after a repair lost changes:
// subscribers that hold them must not resume. The snapshot of rec comes
// first, so that a crash in the middle leaves it loadable (with
// -state-repair again, as the history differs).
func (p *persist) rebase(rec *recovered) error {
	p.log.Warn("-state-repair: changes are lost; the state starts a new history, so subscribers take the table again", "lost", cmp.Or(rec.lost, "what a repair cut short lost"), "seq", rec.seq)
	var h [16]byte
	rand.Read(h[:])
	macs := (&macTable{entries: rec.macs}).stored()
	size, err := snapshot.Write(p.dir.SnapshotPath(rec.seq), snapshot.Header{History: h, Seq: rec.seq}, rec.table.All(), macs)
	if err == nil {
		err = p.dir.SetHistory(h)
	}
	if err != nil {
		return fmt.Errorf("-state-repair: %w", err)
	}
	p.snapSeq, p.snapSize, p.snapAt = rec.seq, size, time.Now()
	snaps, journals, err := p.dir.Files()
	for _, n := range journals {
		if err == nil {
			err = os.Remove(p.dir.JournalPath(n))
		}
	}
	for _, n := range snaps {
		if err == nil && n != rec.seq {
			err = os.Remove(p.dir.SnapshotPath(n))
		}
	}
	if err == nil {
		p.w, err = journal.Create(p.dir.JournalPath(rec.seq), journal.Header{History: h, Seq: rec.seq})
	}
	if err != nil {
		return fmt.Errorf("-state-repair: %w", err)
	}
	rec.window = window{max: rec.window.max, from: rec.seq}
	return nil
}

// read reads the stored state back: the newest snapshot that reads whole,
// then the journals after it, in order. It returns the journals' start
// sequence numbers.
func (p *persist) read(repair bool, keep int) (*recovered, []uint64, error) {
	snaps, journals, err := p.dir.Files()
	if err != nil {
		return nil, nil, err
	}
	rec := &recovered{macs: make(map[mac.Addr]macEntry)}
	p.snapSeq, p.snapSize, p.snapAt = 0, 0, time.Time{}
	var setAside uint64 // with -state-repair: the newest damaged snapshot
	for i := len(snaps) - 1; i >= 0; i-- {
		err := p.readSnapshot(rec, snaps[i], repair)
		if err == nil {
			break
		}
		if !repair {
			return nil, nil, fmt.Errorf("%w (start with -state-repair to start from an older snapshot and the journals after it)", err)
		}
		path := p.dir.SnapshotPath(snaps[i])
		p.log.Warn("-state-repair: a damaged snapshot is set aside", "err", err, "kept_as", path+".damaged")
		if err := os.Rename(path, path+".damaged"); err != nil {
			return nil, nil, fmt.Errorf("-state-repair: %w", err)
		}
		setAside = max(setAside, snaps[i])
	}
	rec.window = window{max: keep, from: rec.seq}
	journals, err = p.replayAll(rec, journals, repair)
	if err != nil {
		return nil, nil, err
	}
	if rec.seq < setAside {
		rec.lost = cmp.Or(rec.lost, fmt.Sprintf("changes %d to %d, with a damaged snapshot", rec.seq+1, setAside))
	}
	return rec, journals, nil
}

// replayAll replays the journals that hold changes after rec's, and
// returns those that continue it. With repair, a gap or damage ends the
// replay and sets rec.lost.
func (p *persist) replayAll(rec *recovered, journals []uint64, repair bool) ([]uint64, error) {
	for i, start := range journals {
		if i+1 < len(journals) && journals[i+1] <= rec.seq {
			continue // all in the snapshot
		}
		if start > rec.seq {
			err := fmt.Errorf("journal %s starts after sequence %d, but the state before it ends at %d: changes %d to %d are missing", p.dir.JournalPath(start), start, rec.seq, rec.seq+1, start)
			if !repair {
				return nil, fmt.Errorf("%w (start with -state-repair to keep the state up to %d)", err, rec.seq)
			}
			p.log.Warn("-state-repair: journals dropped", "err", err)
			rec.lost = cmp.Or(rec.lost, fmt.Sprintf("changes from %d on", rec.seq+1))
			return journals[:i], nil
		}
		last := i == len(journals)-1
		if err := p.replay(rec, p.dir.JournalPath(start), start, last, repair); err != nil {
			return nil, err
		}
		if rec.lost != "" {
			return journals[:i+1], nil
		}
	}
	return journals, nil
}

// readSnapshot reads the snapshot at seq into rec.
func (p *persist) readSnapshot(rec *recovered, seq uint64, repair bool) error {
	path := p.dir.SnapshotPath(seq)
	h, err := snapshot.Read(path, func(r route.Route) error {
		rec.table.Set(&r)
		return nil
	}, func(m snapshot.MAC) error {
		rec.macs[m.MAC] = macEntry{slot: m.Slot, ip: m.IP, dev: m.Dev}
		return nil
	})
	if err == nil && h.Seq != seq {
		err = fmt.Errorf("snapshot %s: sequence number %d, but its name says %d", path, h.Seq, seq)
	}
	if err == nil && h.History != p.dir.History && !repair {
		err = fmt.Errorf("snapshot %s: history %x, but the directory's is %x (a -state-repair was cut short?)", path, h.History, p.dir.History)
	}
	if err != nil {
		rec.table.Clear()
		clear(rec.macs)
		return err
	}
	rec.foreign = rec.foreign || h.History != p.dir.History
	rec.seq = h.Seq
	if st, err := os.Stat(path); err == nil {
		p.snapSeq, p.snapSize, p.snapAt = seq, st.Size(), st.ModTime()
	}
	return nil
}

// replay applies the changes of one journal that rec does not have yet.
// With repair, damage ends the replay and sets rec.lost.
func (p *persist) replay(rec *recovered, path string, start uint64, last, repair bool) error {
	r, err := journal.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if h := r.Header(); h.History != p.dir.History && !repair || h.Seq != start {
		return fmt.Errorf("journal %s: history %x at sequence %d, want %x at %d (the file name's)", path, h.History, h.Seq, p.dir.History, start)
	}
	rec.foreign = rec.foreign || r.Header().History != p.dir.History
	var d wire.Decoder
	for {
		commit, err := r.Next()
		if err == io.EOF {
			return nil
		}
		var dmg *journal.DamageError
		if errors.As(err, &dmg) && (dmg.Torn && last || repair) {
			if _, err := journal.Repair(path); err != nil {
				return err
			}
			what := "cut off a torn last commit (a crash in the middle of a write)"
			if !dmg.Torn || !last {
				what = "-state-repair: cut off damage and everything after it"
				rec.lost = cmp.Or(rec.lost, fmt.Sprintf("%d bytes of %s", dmg.Dropped(), path))
			}
			p.log.Warn("state journal: "+what, "file", path, "offset", dmg.Offset, "bytes_dropped", dmg.Dropped(), "reason", dmg.Reason, "seq", rec.seq)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w (start with -state-repair to keep what comes before it)", err)
		}
		for _, payload := range commit {
			if lo, hi, ok := frameSeqs(payload); ok && hi > rec.seq {
				rec.window.add(lo, hi, [][]byte{wire.AppendFrame(nil, wire.TChanges, payload)})
			}
			var bad error
			derr := d.Changes(payload, func(c wire.Change) {
				if bad != nil || c.Seq <= rec.seq {
					return
				}
				if c.Seq != rec.seq+1 {
					bad = fmt.Errorf("journal %s: change %d follows %d", path, c.Seq, rec.seq)
					return
				}
				rec.apply(&c)
			})
			if err := cmp.Or(bad, derr); err != nil {
				return fmt.Errorf("journal %s at offset %d: %w", path, r.Offset(), err)
			}
		}
	}
}

// apply applies one change of the stream to the recovered state.
func (rec *recovered) apply(c *wire.Change) {
	rec.seq = c.Seq
	switch c.Op {
	case wire.OpAdd, wire.OpChange:
		rec.table.Set(&c.Route)
	case wire.OpDel:
		rec.table.Delete(c.Route.Key())
	case wire.OpMACAdd, wire.OpMACChange:
		rec.macs[c.MAC] = macEntry{slot: c.Slot, ip: c.IP, dev: c.Dev}
	case wire.OpMACDel:
		delete(rec.macs, c.MAC)
	case wire.OpFlush:
		rec.table.Clear()
		clear(rec.macs)
	}
}

// commit stores a turn's changes: every Changes frame in bufs, in one
// write and one fsync.
func (p *persist) commit(bufs [][]byte) error {
	frames, size := 0, 0
	for _, b := range bufs {
		for {
			_, payload, rest, ok := wire.NextFrame(b)
			if !ok {
				break
			}
			frames, size, b = frames+1, size+len(payload), rest
		}
	}
	p.w.Reserve(frames, size)
	n := 0
	for _, b := range bufs {
		for {
			typ, payload, rest, ok := wire.NextFrame(b)
			if !ok {
				break
			}
			b = rest
			if typ == wire.TChanges {
				if err := p.w.Append(payload); err != nil {
					p.w.Discard()
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil // a MAC segment that moved, say
	}
	start := time.Now()
	if err := p.w.Commit(); err != nil {
		p.w.Discard()
		p.last = err
		return err
	}
	p.note(time.Since(start))
	return nil
}

// status returns what `rtm status` says of the state directory.
func (p *persist) status() *wire.StateStatus {
	st := &wire.StateStatus{Dir: p.dir.Path, JournalBytes: p.journalBytes(), Commits: p.n}
	if p.last != nil {
		st.LastError = p.last.Error()
	}
	if !p.snapAt.IsZero() {
		st.SnapshotTime = p.snapAt.UTC().Format(time.RFC3339)
		st.SnapshotSeq, st.SnapshotBytes = p.snapSeq, p.snapSize
	}
	if p.snapErr != nil {
		st.SnapshotError = p.snapErr.Error()
	}
	if len(p.lat) > 0 {
		lat := slices.Clone(p.lat)
		slices.Sort(lat)
		ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
		st.FsyncP50, st.FsyncP99 = ms(0.5), ms(0.99)
	}
	return st
}

// journalBytes returns the size of the journals after the newest snapshot.
func (p *persist) journalBytes() int64 { return p.older + p.w.Size() }

// note keeps a commit's latency for the status.
func (p *persist) note(d time.Duration) {
	p.n++
	const keep = 1024
	if len(p.lat) < keep {
		p.lat = append(p.lat, d)
		return
	}
	p.lat[p.next] = d
	p.next = (p.next + 1) % keep
}

func (p *persist) close() {
	p.w.Close()
	p.dir.Close()
}
