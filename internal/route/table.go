package route

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// Table is a routing table: IPv4 and IPv6 prefixes to next hops, with exact
// get, longest-prefix match and iteration in Compare order.
//
// Next hops are interned: each distinct (gateway, dev) pair is stored once
// and routes hold a 4-byte index, since real tables have few next hops.
//
// Prefixes live in shards keyed by their leading bits (8 for IPv4, 16 for
// IPv6; shorter prefixes share one shard per family), each a bart table.
// Freeze returns a read-only view in O(shards); the first write to a shard
// after a Freeze copies that shard only, so the owner of a table can hand a
// consistent snapshot to another goroutine and keep writing.
//
// The zero value is an empty table. A Table is not safe for concurrent use;
// a View is safe for concurrent reads.
type Table struct {
	fam  [2]family // IPv4, IPv6
	hops hopSet
	gen  uint64 // bumped by Freeze; shards of an older gen are shared
}

type family struct {
	keyBits int
	shards  map[uint16]*shard
	short   *shard // prefixes shorter than keyBits
	size    int
}

type shard struct {
	gen uint64
	t   *bart.Table[uint32]
}

func (t *Table) family(a netip.Addr) *family {
	i := 0
	if !a.Is4() {
		i = 1
	}
	f := &t.fam[i]
	if f.keyBits == 0 {
		f.keyBits = 8 << i
		f.shards = make(map[uint16]*shard)
	}
	return f
}

func shardKey(a netip.Addr) uint16 {
	if a.Is4() {
		return uint16(a.As4()[0])
	}
	b := a.As16()
	return uint16(b[0])<<8 | uint16(b[1])
}

// lookupShard returns the shard holding p, or nil.
func (f *family) lookupShard(p netip.Prefix) *shard {
	if p.Bits() < f.keyBits {
		return f.short
	}
	return f.shards[shardKey(p.Addr())]
}

// writableShard returns the shard for p, created or copied as needed so that
// no frozen view sees the write.
func (f *family) writableShard(p netip.Prefix, gen uint64) *shard {
	s := f.lookupShard(p)
	switch {
	case s == nil:
		s = &shard{gen: gen, t: new(bart.Table[uint32])}
	case s.gen != gen:
		s = &shard{gen: gen, t: s.t.Clone()}
	default:
		return s
	}
	if p.Bits() < f.keyBits {
		f.short = s
	} else {
		f.shards[shardKey(p.Addr())] = s
	}
	return s
}

// Len returns the number of routes.
func (t *Table) Len() int { return t.fam[0].size + t.fam[1].size }

// Len4 and Len6 return the number of IPv4 and IPv6 routes.
func (t *Table) Len4() int { return t.fam[0].size }
func (t *Table) Len6() int { return t.fam[1].size }

// Hops returns the number of distinct next hops in use.
func (t *Table) Hops() int { return len(t.hops.ids) }

// Get returns the next hop of the route for exactly p.
func (t *Table) Get(p netip.Prefix) (NextHop, bool) {
	s := t.family(p.Addr()).lookupShard(p)
	if s == nil {
		return NextHop{}, false
	}
	id, ok := s.t.Get(p)
	if !ok {
		return NextHop{}, false
	}
	return t.hops.list[id], true
}

// Lookup returns the route with the longest prefix that contains a.
func (t *Table) Lookup(a netip.Addr) (Route, bool) {
	return lookup(&t.fam, t.hops.list, a)
}

func lookup(fams *[2]family, hops []NextHop, a netip.Addr) (Route, bool) {
	if !a.IsValid() {
		return Route{}, false
	}
	a = a.Unmap().WithZone("")
	f := &fams[0]
	if !a.Is4() {
		f = &fams[1]
	}
	host := netip.PrefixFrom(a, a.BitLen())
	for _, s := range [2]*shard{f.shards[shardKey(a)], f.short} {
		if s == nil {
			continue
		}
		if p, id, ok := s.t.LookupPrefixLPM(host); ok {
			return Route{Dst: p, NextHop: hops[id]}, true
		}
	}
	return Route{}, false
}

// Set makes p route to nh and reports the next hop it had before.
func (t *Table) Set(p netip.Prefix, nh NextHop) (old NextHop, had bool) {
	f := t.family(p.Addr())
	s := f.writableShard(p, t.gen)
	id := t.hops.ref(nh)
	var oldID uint32
	s.t.Modify(p, func(v uint32, ok bool) (uint32, bool) {
		oldID, had = v, ok
		return id, false
	})
	if !had {
		f.size++
		return NextHop{}, false
	}
	old = t.hops.list[oldID]
	t.hops.unref(oldID)
	return old, true
}

// Delete removes the route for exactly p and reports the next hop it had.
func (t *Table) Delete(p netip.Prefix) (old NextHop, had bool) {
	f := t.family(p.Addr())
	if s := f.lookupShard(p); s == nil {
		return NextHop{}, false
	} else if _, ok := s.t.Get(p); !ok {
		return NextHop{}, false
	}
	s := f.writableShard(p, t.gen)
	var oldID uint32
	s.t.Modify(p, func(v uint32, ok bool) (uint32, bool) {
		oldID, had = v, ok
		return 0, true
	})
	f.size--
	old = t.hops.list[oldID]
	t.hops.unref(oldID)
	return old, true
}

// Clear removes every route.
func (t *Table) Clear() { *t = Table{gen: t.gen + 1} }

// All returns the routes in Compare order: IPv4 first, then by address, then
// by prefix length.
func (t *Table) All() iter.Seq[Route] { return all(&t.fam, t.hops.list) }

// View is a read-only snapshot of a Table, safe to read from any goroutine
// while the Table changes.
type View struct {
	fam  [2]family
	hops []NextHop
}

// Freeze returns a View of the table as it is now. It costs O(shards + next
// hops); the table copies a shard on its first write after the Freeze.
func (t *Table) Freeze() *View {
	v := &View{hops: slices.Clone(t.hops.list)}
	for i := range t.fam {
		f := t.fam[i]
		f.shards = make(map[uint16]*shard, len(t.fam[i].shards))
		for k, s := range t.fam[i].shards {
			f.shards[k] = s
		}
		v.fam[i] = f
	}
	t.gen++
	return v
}

// Len returns the number of routes in the view.
func (v *View) Len() int { return v.fam[0].size + v.fam[1].size }

// All returns the routes of the view in Compare order.
func (v *View) All() iter.Seq[Route] { return all(&v.fam, v.hops) }

// Lookup returns the route with the longest prefix that contains a.
func (v *View) Lookup(a netip.Addr) (Route, bool) { return lookup(&v.fam, v.hops, a) }

func all(fams *[2]family, hops []NextHop) iter.Seq[Route] {
	return func(yield func(Route) bool) {
		for i := range fams {
			if !fams[i].all(hops, yield) {
				return
			}
		}
	}
}

// all yields the family's routes in order. A prefix shorter than the shard
// key has only zeros past its first keyBits bits, so it sorts before every
// prefix of the shard with the same key: each shard is preceded by the short
// prefixes of its key.
func (f *family) all(hops []NextHop, yield func(Route) bool) bool {
	var short []Route
	if f.short != nil {
		for p, id := range f.short.t.AllSorted() {
			short = append(short, Route{Dst: p, NextHop: hops[id]})
		}
	}
	keys := make([]uint16, 0, len(f.shards))
	for k := range f.shards {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for len(short) > 0 && shardKey(short[0].Dst.Addr()) <= k {
			if !yield(short[0]) {
				return false
			}
			short = short[1:]
		}
		for p, id := range f.shards[k].t.AllSorted() {
			if !yield(Route{Dst: p, NextHop: hops[id]}) {
				return false
			}
		}
	}
	for _, r := range short {
		if !yield(r) {
			return false
		}
	}
	return true
}

// hopSet interns next hops with reference counts. Freed indexes are reused.
type hopSet struct {
	list []NextHop
	refs []uint32
	ids  map[NextHop]uint32
	free []uint32
	// recent caches indexes by a cheap hash of the next hop, to skip the
	// map (which hashes the whole value) for the few next hops that real
	// tables repeat.
	recent [64]uint32
}

func recentSlot(nh NextHop) int {
	a := nh.Gateway.As16()
	return int(a[15]^a[14]*3^byte(len(nh.Dev))*7) & 63
}

func (h *hopSet) ref(nh NextHop) uint32 {
	slot := recentSlot(nh)
	if id := h.recent[slot]; int(id) < len(h.list) && h.refs[id] > 0 && h.list[id] == nh {
		h.refs[id]++
		return id
	}
	if id, ok := h.ids[nh]; ok {
		h.refs[id]++
		h.recent[slot] = id
		return id
	}
	if h.ids == nil {
		h.ids = make(map[NextHop]uint32)
	}
	var id uint32
	if n := len(h.free); n > 0 {
		id = h.free[n-1]
		h.free = h.free[:n-1]
		h.list[id], h.refs[id] = nh, 1
	} else {
		id = uint32(len(h.list))
		h.list = append(h.list, nh)
		h.refs = append(h.refs, 1)
	}
	h.ids[nh] = id
	h.recent[slot] = id
	return id
}

func (h *hopSet) unref(id uint32) {
	h.refs[id]--
	if h.refs[id] == 0 {
		delete(h.ids, h.list[id])
		h.list[id] = NextHop{}
		h.free = append(h.free, id)
	}
}
