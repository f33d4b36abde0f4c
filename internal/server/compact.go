package server

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rtm-project/rtm/internal/journal"
	"github.com/rtm-project/rtm/internal/snapshot"
	"github.com/rtm-project/rtm/internal/state"
)

// Compaction keeps the journal from growing without end. When it has
// grown past compactFactor times the last snapshot (and at least
// Config.CompactMin), the loop starts a new journal at the current sequence
// number S and hands a frozen view of the tables to a goroutine, which
// writes snapshot-S while the loop goes on. When the snapshot is on disk,
// the loop removes the files it replaces. A crash at any point leaves a
// loadable state: until snapshot-S is whole under its name, the old
// snapshot and journals hold everything, and the new journal continues
// them (docs/state.md).

// DefaultCompactMin is the journal size below which rtmd never compacts
// (Config.CompactMin).
const DefaultCompactMin = 64 << 20

// compactFactor is how many times the last snapshot's size the journal
// may grow before the next snapshot.
const compactFactor = 4

// compaction is a finished snapshot write, reported to the loop.
type compaction struct {
	seq  uint64
	size int64
	took time.Duration
	err  error
}

// maybeCompact starts a compaction when the journal is due one. It runs
// on the loop, after publish: everything through s.seq is stored.
func (s *Server) maybeCompact() {
	p := s.persist
	if p == nil || p.compacting || p.journalBytes() < max(p.compactMin, compactFactor*p.snapSize) || time.Now().Before(p.retryAt) {
		return
	}
	seq, size := s.seq, p.journalBytes()
	if err := p.rotate(seq); err != nil {
		p.retryAt = time.Now().Add(compactRetry)
		p.snapErr = err
		s.log.Error("state: could not start a new journal for compaction; the old one goes on", "err", err, "retry_in", compactRetry)
		return
	}
	p.compacting = true
	s.log.Info("state compaction: writing a snapshot", "seq", seq, "journal_bytes", size)
	v, macs := s.table.Freeze(), s.macs.stored()
	path, hdr := p.dir.SnapshotPath(seq), snapshot.Header{History: p.dir.History, Seq: seq}
	s.compactions.Go(func() {
		start := time.Now()
		size, err := snapshot.Write(path, hdr, v.All(), macs)
		s.compacted <- compaction{seq: seq, size: size, took: time.Since(start), err: err}
	})
}

// compactRetry is how long rtmd waits after a compaction failed before it
// tries again.
const compactRetry = time.Minute

// compactionDone takes a finished compaction: the files the snapshot replaces
// are removed, or, when it failed, kept.
func (s *Server) compactionDone(c compaction) {
	p := s.persist
	p.compacting = false
	if c.err != nil {
		p.retryAt = time.Now().Add(compactRetry)
		p.snapErr = c.err
		s.log.Error("state: snapshot failed; the journals it would replace are kept", "err", c.err, "retry_in", compactRetry)
		return
	}
	p.snapSeq, p.snapSize, p.snapAt, p.snapErr = c.seq, c.size, time.Now(), nil
	p.older = 0 // the journals before the one that starts at c.seq
	removed, err := p.prune(c.seq)
	if err != nil {
		s.log.Error("state: removing files the snapshot replaces", "err", err)
	}
	s.log.Info("state compacted", "seq", c.seq, "snapshot_bytes", c.size, "took", c.took.Round(time.Millisecond), "removed", removed)
}

// rotate closes the journal and starts the next one after seq.
func (p *persist) rotate(seq uint64) error {
	w, err := journal.Create(p.dir.JournalPath(seq), journal.Header{History: p.dir.History, Seq: seq})
	if err != nil {
		return err
	}
	p.older += p.w.Size()
	p.w.Close()
	p.w = w
	return nil
}

// prune removes what the snapshot at seq makes useless: older snapshots,
// and journals whose changes are all at or before seq (each journal's end
// is where the next one starts).
func (p *persist) prune(seq uint64) ([]string, error) {
	snaps, journals, err := p.dir.Files()
	if err != nil {
		return nil, err
	}
	var doomed []string
	for _, n := range snaps {
		if n < seq {
			doomed = append(doomed, p.dir.SnapshotPath(n))
		}
	}
	for i, n := range journals {
		if i+1 < len(journals) && journals[i+1] <= seq {
			doomed = append(doomed, p.dir.JournalPath(n))
		}
	}
	var errs []error
	var removed []string
	for _, name := range doomed {
		if err := os.Remove(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		if err := state.SyncDir(p.dir.Path); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", p.dir.Path, err))
		}
	}
	return removed, errors.Join(errs...)
}
