package server

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// macTable is the loop's MAC table: the values in memory, for the loop's own
// decisions, and in the shared segment, where clients read them. A record is
// written before the change that names it is published, and cleared when
// its delete is.
type macTable struct {
	base    string
	seg     *shm.Segment
	prev    *shm.Segment // the generation before, kept linked for snapshots in flight
	entries map[mac.Addr]macEntry
	free    []uint32
	next    uint32 // the lowest slot never used in seg
}

type macEntry struct {
	slot uint32
	ip   netip.Addr
}

func newMACTable(base string, capacity int) (*macTable, error) {
	if err := shm.CheckName(base); err != nil {
		return nil, err
	}
	seg, err := shm.Create(base+".1", max(capacity, 1), 1)
	if err != nil {
		return nil, err
	}
	return &macTable{base: base, seg: seg, entries: make(map[mac.Addr]macEntry)}, nil
}

func (t *macTable) segInfo() wire.MACSeg {
	return wire.MACSeg{Gen: t.seg.Gen, Capacity: uint32(t.seg.Capacity), Name: t.seg.Name}
}

// set writes m's value and reports whether m existed and whether anything
// changed. grew is set when the segment had to grow: the caller announces
// the new one before the change.
func (t *macTable) set(m mac.Addr, ip netip.Addr) (e macEntry, had, changed, grew bool, err error) {
	e, had = t.entries[m]
	if had && e.ip == ip {
		return e, true, false, false, nil
	}
	if !had {
		switch {
		case len(t.free) > 0:
			e.slot = t.free[len(t.free)-1]
			t.free = t.free[:len(t.free)-1]
		case int(t.next) < t.seg.Capacity:
			e.slot = t.next
			t.next++
		default:
			if err := t.grow(); err != nil {
				return e, false, false, false, err
			}
			grew = true
			e.slot = t.next
			t.next++
		}
	}
	e.ip = ip
	t.entries[m] = e
	t.seg.Set(int(e.slot), m, ip)
	return e, had, true, grew, nil
}

func (t *macTable) del(m mac.Addr) bool {
	e, had := t.entries[m]
	if !had {
		return false
	}
	delete(t.entries, m)
	t.seg.Clear(int(e.slot))
	t.free = append(t.free, e.slot)
	return true
}

// grow moves the table to a new generation of twice the capacity. Clients
// map the new object when the stream announces it; the old one is never
// truncated, so no reader of it can fault, and stays linked until the next
// growth so that a snapshot taken before this one can still open it.
func (t *macTable) grow() error {
	old := t.seg
	seg, err := shm.Create(fmt.Sprintf("%s.%d", t.base, old.Gen+1), old.Capacity*2, old.Gen+1)
	if err != nil {
		return fmt.Errorf("growing the MAC segment: %w", err)
	}
	// Slots stay where they were; the free list stays valid.
	for m, e := range t.entries {
		seg.Set(int(e.slot), m, e.ip)
	}
	if t.prev != nil {
		t.prev.Close()
		shm.Unlink(t.prev.Name)
	}
	t.prev, t.seg = old, seg
	return nil
}

func (t *macTable) clear() {
	for m := range t.entries {
		t.del(m)
	}
	t.free, t.next = t.free[:0], 0
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

// macView is a snapshot of the MAC keys, for a subscriber's writer.
type macView struct {
	seg   wire.MACSeg
	slots []macSlot // sorted by MAC
}

type macSlot struct {
	mac  mac.Addr
	slot uint32
}

func (t *macTable) freeze() *macView {
	v := &macView{seg: t.segInfo(), slots: make([]macSlot, 0, len(t.entries))}
	for m, e := range t.entries {
		v.slots = append(v.slots, macSlot{m, e.slot})
	}
	slices.SortFunc(v.slots, func(a, b macSlot) int { return mac.Compare(a.mac, b.mac) })
	return v
}

// sorted returns the MAC entries in `mac show` order.
func (t *macTable) sorted() []macSlot {
	return t.freeze().slots
}

// macValue is a MAC and its IP.
type macValue struct {
	mac mac.Addr
	ip  netip.Addr
}

// values returns the table in `mac show` order, each IP read back from the
// segment, as a client reads it.
func (t *macTable) values() []macValue {
	slots := t.sorted()
	out := make([]macValue, 0, len(slots))
	for _, s := range slots {
		if m, ip, ok := t.seg.Read(int(s.slot)); ok && m == s.mac {
			out = append(out, macValue{m, ip})
		}
	}
	return out
}
