package server

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/snapshot"
	"github.com/rtm-project/rtm/internal/wire"
)

// macTable is the loop's MAC table: the values in memory, for the loop's own
// decisions, and in the shared segment, where clients read them. A record is
// written before the change that names it is published, and cleared when
// its delete is.
//
// The segment can fail under rtmd: whoever has rtmd's uid can truncate or
// remove the object. A write that faults, or a Check before a snapshot
// that finds the object short or unlinked, moves the table to a new
// generation, written whole from the values in memory; clients follow it as
// they follow growth.
type macTable struct {
	base    string
	seg     *shm.Segment
	prev    *shm.Segment // the generation before, kept linked for snapshots in flight
	entries map[mac.Addr]macEntry
	free    []uint32
	next    uint32 // the lowest slot never used in seg
	seq     uint64 // the header's sequence number and last flush, for a new generation
	flushed uint64

	// create makes a generation of the segment; tests make it fail.
	create func(base string, capacity int, gen uint32) (*shm.Segment, error)
	// moved, if set, is called once the table is on a new generation:
	// cause is nil for growth, else what was wrong with the old one.
	moved func(cause error)
}

type macEntry struct {
	slot uint32
	ip   netip.Addr
	dev  string // the interface, or ""; kept here and in the stream, not in the segment
}

// newMACTable creates the first generation of the segment base; gid, if not
// -1, is its group.
func newMACTable(base string, capacity, gid int) (*macTable, error) {
	if err := shm.CheckName(base); err != nil {
		return nil, err
	}
	t := &macTable{
		base:    base,
		entries: make(map[mac.Addr]macEntry),
		create: func(base string, capacity int, gen uint32) (*shm.Segment, error) {
			return shm.Create(base, capacity, gen, gid)
		},
	}
	var err error
	if t.seg, err = t.create(base, max(capacity, 1), 1); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *macTable) segInfo() wire.MACSeg {
	return wire.MACSeg{Gen: t.seg.Gen, Capacity: uint32(t.seg.Capacity), Name: t.seg.Name}
}

// room returns how many new keys fit in the segment.
func (t *macTable) room() int { return len(t.free) + t.seg.Capacity - int(t.next) }

// reserve makes room for n new keys: it grows the segment once, by
// doubling, to a size that holds them. On error nothing changed.
func (t *macTable) reserve(n int) error {
	if n <= t.room() {
		return nil
	}
	capacity := t.seg.Capacity
	for len(t.free)+capacity-int(t.next) < n {
		capacity *= 2
	}
	if err := t.renew(capacity, nil); err != nil {
		return fmt.Errorf("growing the MAC segment to %d records: %w", capacity, err)
	}
	return nil
}

// reserveFor makes room for the keys of vals that the table does not hold,
// so that applying vals cannot fail for want of room.
func (t *macTable) reserveFor(vals []macValue) error {
	seen := make(map[mac.Addr]struct{})
	for _, v := range vals {
		if _, had := t.entries[v.mac]; !had {
			seen[v.mac] = struct{}{}
		}
	}
	return t.reserve(len(seen))
}

// set writes m's value and reports whether m existed and whether anything
// changed. On error nothing changed.
func (t *macTable) set(m mac.Addr, ip netip.Addr, dev string) (e macEntry, had, changed bool, err error) {
	old, had := t.entries[m]
	if had && old.ip == ip && old.dev == dev {
		return old, true, false, nil
	}
	e = old
	if !had {
		if err := t.reserve(1); err != nil {
			return e, false, false, err
		}
		if len(t.free) > 0 {
			e.slot = t.free[len(t.free)-1]
			t.free = t.free[:len(t.free)-1]
		} else {
			e.slot = t.next
			t.next++
		}
	}
	e.ip, e.dev = ip, dev
	t.entries[m] = e
	if err := t.seg.Set(int(e.slot), m, ip); err != nil {
		// A new generation is written from t.entries, which has the
		// new value already.
		if err := t.repair(err); err != nil {
			if had {
				t.entries[m] = old
			} else {
				delete(t.entries, m)
				t.free = append(t.free, e.slot)
			}
			return old, had, false, err
		}
	}
	return e, had, true, nil
}

// del deletes m's entry and reports whether there was one. On error nothing
// changed.
func (t *macTable) del(m mac.Addr) (bool, error) {
	e, had := t.entries[m]
	if !had {
		return false, nil
	}
	delete(t.entries, m)
	if err := t.seg.Clear(int(e.slot)); err != nil {
		if err := t.repair(err); err != nil {
			t.entries[m] = e
			return false, err
		}
	}
	t.free = append(t.free, e.slot)
	return true, nil
}

// repair moves the table to a new generation of the same capacity after
// the segment failed with cause.
func (t *macTable) repair(cause error) error {
	if err := t.renew(t.seg.Capacity, cause); err != nil {
		return fmt.Errorf("%w; moving the MAC table to a new segment: %w", cause, err)
	}
	return nil
}

// check moves the table to a new generation if its segment was truncated
// or unlinked under rtmd, so that a client about to be told its name finds
// a whole one. It costs one fstat.
func (t *macTable) check() error {
	if err := t.seg.Check(); err != nil {
		return t.repair(err)
	}
	return nil
}

// renew moves the table to a new generation of the given capacity, cause
// being why (nil: growth). Clients map the new object when the stream
// announces it. After growth the old one is never truncated, so no reader
// of it can fault, and stays linked until the next generation so that a
// snapshot taken before this one can still open it; a failed one is
// removed at once.
func (t *macTable) renew(capacity int, cause error) error {
	old := t.seg
	seg, err := t.create(t.base, capacity, old.Gen+1)
	if err != nil {
		return err
	}
	// Slots stay where they were; the free list stays valid.
	for m, e := range t.entries {
		if err == nil {
			err = seg.Set(int(e.slot), m, e.ip)
		}
	}
	if err == nil {
		err = errors.Join(seg.SetCounters(len(t.entries), t.seq), seg.SetFlush(t.flushed))
	}
	if err != nil {
		seg.Close()
		shm.Unlink(seg.Name)
		return err
	}
	if cause != nil {
		old.Close()
		shm.Unlink(old.Name)
	} else {
		if t.prev != nil {
			t.prev.Close()
			shm.Unlink(t.prev.Name)
		}
		t.prev = old
	}
	t.seg = seg
	if t.moved != nil {
		t.moved(cause)
	}
	return nil
}

// setCounters writes the live-record count and sequence number into the
// header.
func (t *macTable) setCounters(seq uint64) error {
	t.seq = seq
	if err := t.seg.SetCounters(len(t.entries), seq); err != nil {
		return t.repair(err)
	}
	return nil
}

// setFlush writes the sequence number of a flush into the header.
func (t *macTable) setFlush(seq uint64) error {
	t.flushed = seq
	if err := t.seg.SetFlush(seq); err != nil {
		return t.repair(err)
	}
	return nil
}

// clear empties the table. The table is empty even on error.
func (t *macTable) clear() error {
	var err error
	for m, e := range t.entries {
		if err == nil {
			err = t.seg.Clear(int(e.slot))
		}
		delete(t.entries, m)
	}
	t.free, t.next = t.free[:0], 0
	if err != nil {
		return t.repair(err)
	}
	return nil
}

// restore makes the table entries, each in its slot: after a restart, the
// slots the subscribers that resume know. A segment too small for them is
// replaced by a new generation.
func (t *macTable) restore(entries map[mac.Addr]macEntry) error {
	if err := t.clear(); err != nil {
		return err
	}
	used := make(map[uint32]bool, len(entries))
	next := uint32(0)
	for _, e := range entries {
		if used[e.slot] {
			return fmt.Errorf("MAC table: slot %d twice in the stored state", e.slot)
		}
		used[e.slot] = true
		next = max(next, e.slot+1)
	}
	capacity := t.seg.Capacity
	for capacity < int(next) {
		capacity *= 2
	}
	t.entries = maps.Clone(entries)
	t.next, t.free = next, t.free[:0]
	for i := range next {
		if !used[i] {
			t.free = append(t.free, i)
		}
	}
	if capacity == t.seg.Capacity {
		for m, e := range entries {
			if err := t.seg.Set(int(e.slot), m, e.ip); err != nil {
				return t.repair(err)
			}
		}
		return nil
	}
	moved := t.moved // a new generation, not news: subscribers get it with the table
	t.moved = nil
	defer func() { t.moved = moved }()
	return t.renew(capacity, nil)
}

// stored returns the entries as a snapshot stores them, with their slots.
func (t *macTable) stored() []snapshot.MAC {
	out := make([]snapshot.MAC, 0, len(t.entries))
	for m, e := range t.entries {
		out = append(out, snapshot.MAC{MAC: m, Slot: e.slot, IP: e.ip, Dev: e.dev})
	}
	return out
}

// close unmaps and unlinks every generation.
func (t *macTable) close() {
	for _, s := range []*shm.Segment{t.prev, t.seg} {
		if s != nil {
			s.Close()
			shm.Unlink(s.Name)
		}
	}
}

// macSegMoved logs that the MAC table is on a new generation of the
// segment, and announces it in the stream before the change that needed it.
func (s *Server) macSegMoved(cause error) {
	if cause == nil {
		s.log.Info("MAC segment grown", "name", s.macs.seg.Name, "capacity", s.macs.seg.Capacity)
	} else {
		s.log.Error("MAC segment failed under rtmd; the table moved to a new generation", "err", cause, "name", s.macs.seg.Name, "capacity", s.macs.seg.Capacity)
	}
	s.changes.AppendFrame(wire.AppendMACSeg(nil, s.macs.segInfo()))
}

// macView is a snapshot of the MAC keys, for a subscriber's writer.
type macView struct {
	seg   wire.MACSeg
	slots []macSlot // sorted by MAC
}

type macSlot struct {
	mac  mac.Addr
	slot uint32
	dev  string
}

func (t *macTable) freeze() *macView {
	v := &macView{seg: t.segInfo(), slots: make([]macSlot, 0, len(t.entries))}
	for m, e := range t.entries {
		v.slots = append(v.slots, macSlot{m, e.slot, e.dev})
	}
	slices.SortFunc(v.slots, func(a, b macSlot) int { return mac.Compare(a.mac, b.mac) })
	return v
}

// sorted returns the MAC entries in `mac show` order.
func (t *macTable) sorted() []macSlot {
	return t.freeze().slots
}

// macValue is a MAC, its IP and its interface ("" for none).
type macValue struct {
	mac mac.Addr
	ip  netip.Addr
	dev string
}

// values returns the table in `mac show` order, each IP read back from the
// segment, as a client reads it.
func (t *macTable) values() []macValue {
	slots := t.sorted()
	out := make([]macValue, 0, len(slots))
	for _, s := range slots {
		if m, ip, ok := t.seg.Read(int(s.slot)); ok && m == s.mac {
			out = append(out, macValue{m, ip, s.dev})
		}
	}
	return out
}
