package server

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/rtm-project/rtm/internal/journal"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/state"
	"github.com/rtm-project/rtm/internal/wire"
)

// persist is the state directory rtmd keeps its tables in (docs/state.md):
// every turn's changes go to the journal, fsynced, before they are
// published or acknowledged.
type persist struct {
	dir  *state.Dir
	w    *journal.Writer
	log  *slog.Logger
	lat  []time.Duration // the last commits' latencies, a ring
	next int
	n    uint64 // commits
	last error  // the last failed commit's error
}

// recovered is the state read back at start.
type recovered struct {
	table  route.Table
	macs   map[mac.Addr]macEntry // with the slots rtmd had them in
	seq    uint64
	window window // the last changes, for subscribers that resume
}

// openPersist opens the state directory at path and reads its state back:
// the journals in order. A torn tail of the last journal (a crash in the
// middle of a write) is cut off and logged; damage anywhere else is an
// error naming the file and offset, unless repair is set, which keeps what
// comes before the damage and logs what is lost.
func openPersist(path string, repair bool, window int, log *slog.Logger) (*persist, *recovered, error) {
	dir, err := state.Open(path)
	if err != nil {
		return nil, nil, err
	}
	p := &persist{dir: dir, log: log}
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

// recover replays the journals into a new state, and opens the last for
// appending (or makes the first).
func (p *persist) recover(repair bool, window int) (*recovered, error) {
	rec, journals, err := p.read(repair, window)
	if err != nil {
		return nil, err
	}
	if len(journals) == 0 {
		p.w, err = journal.Create(p.dir.JournalPath(0), journal.Header{History: p.dir.History})
	} else {
		p.w, err = journal.OpenAppend(p.dir.JournalPath(journals[len(journals)-1]))
	}
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", p.dir.Path, err)
	}
	return rec, nil
}

// read reads the stored state back: the journals, in order.
func (p *persist) read(repair bool, keep int) (*recovered, []uint64, error) {
	rec := &recovered{macs: make(map[mac.Addr]macEntry), window: window{max: keep}}
	_, journals, err := p.dir.Files()
	if err != nil {
		return nil, nil, err
	}
	for i, start := range journals {
		last := i == len(journals)-1
		if err := p.replay(rec, p.dir.JournalPath(start), start, last, repair); err != nil {
			return nil, nil, err
		}
	}
	return rec, journals, nil
}

// replay applies the changes of one journal that rec does not have yet.
func (p *persist) replay(rec *recovered, path string, start uint64, last, repair bool) error {
	r, err := journal.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if h := r.Header(); h.History != p.dir.History || h.Seq != start {
		return fmt.Errorf("journal %s: history %x at sequence %d, want %x at %d (the file name's)", path, h.History, h.Seq, p.dir.History, start)
	}
	if start > rec.seq {
		return fmt.Errorf("journal %s starts after sequence %d, but the state before it ends at %d: changes are missing", path, start, rec.seq)
	}
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
			what := "cut off a torn last record (a crash in the middle of a write)"
			if !dmg.Torn || !last {
				what = "-state-repair: cut off damage and everything after it"
			}
			p.log.Warn("state journal: "+what, "file", path, "offset", dmg.Offset, "bytes_dropped", dmg.Dropped(), "reason", dmg.Reason, "seq", rec.seq)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w (start with -state-repair to keep what comes before it)", err)
		}
		for _, payload := range commit {
			if first, last, ok := frameSeqs(payload); ok && last > rec.seq {
				rec.window.add(first, last, [][]byte{wire.AppendFrame(nil, wire.TChanges, payload)})
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
	st := &wire.StateStatus{Dir: p.dir.Path, JournalBytes: p.w.Size(), Commits: p.n}
	if p.last != nil {
		st.LastError = p.last.Error()
	}
	if len(p.lat) > 0 {
		lat := slices.Clone(p.lat)
		slices.Sort(lat)
		ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
		st.FsyncP50, st.FsyncP99 = ms(0.5), ms(0.99)
	}
	return st
}

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
