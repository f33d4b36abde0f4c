package route

import (
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/gaissmai/bart"
)

// Table holds rtm's routing tables: for each table number, IPv4 and IPv6
// prefixes to route attributes, with exact get, longest-prefix match and
// iteration in Compare order.
//
// Attributes are interned: each distinct Attrs value is stored once and
// routes hold a 4-byte index, since real tables have few distinct ones.
//
// Prefixes live in shards keyed by their leading bits (8 for IPv4, 16 for
// IPv6; shorter prefixes share one shard per family), each a bart table.
// Freeze returns a read-only view in O(tables x shards + distinct
// attributes); the first write to a shard after a Freeze copies that shard
// only, so the owner of a table can hand a consistent snapshot to another
// goroutine and keep writing.
//
// The zero value is empty. A Table is not safe for concurrent use; a View
// is safe for concurrent reads.
type Table struct {
	tabs  map[uint32]*tab
	attrs attrSet
	gen   uint64 // bumped by Freeze; shards of an older gen are shared
	size  [2]int // IPv4, IPv6 routes in all tables
}

// tab is one routing table: a family per address family.
type tab struct {
	fam [2]family // IPv4, IPv6
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

func famIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
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
	if f.keyBits == 0 {
		f.keyBits = 8 << famIndex(p.Addr())
		f.shards = make(map[uint16]*shard)
	}
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

// get returns the attribute index of the route for exactly p.
func (t *tab) get(p netip.Prefix) (uint32, bool) {
	if t == nil {
		return 0, false
	}
	s := t.fam[famIndex(p.Addr())].lookupShard(p)
	if s == nil {
		return 0, false
	}
	return s.t.Get(p)
}

// lookup returns the longest prefix that contains a, and its index.
func (t *tab) lookup(a netip.Addr) (netip.Prefix, uint32, bool) {
	if t == nil || !a.IsValid() {
		return netip.Prefix{}, 0, false
	}
	a = a.Unmap().WithZone("")
	f := &t.fam[famIndex(a)]
	host := netip.PrefixFrom(a, a.BitLen())
	for _, s := range [2]*shard{f.shards[shardKey(a)], f.short} {
		if s == nil {
			continue
		}
		if p, id, ok := s.t.LookupPrefixLPM(host); ok {
			return p, id, true
		}
	}
	return netip.Prefix{}, 0, false
}

// Len returns the number of routes in all tables.
func (t *Table) Len() int { return t.size[0] + t.size[1] }

// Len4 and Len6 return the number of IPv4 and IPv6 routes in all tables.
func (t *Table) Len4() int { return t.size[0] }
func (t *Table) Len6() int { return t.size[1] }

// Distinct returns the number of distinct attribute sets in use.
func (t *Table) Distinct() int { return len(t.attrs.ids) }

// Get returns the attributes of the route with key k.
func (t *Table) Get(k Key) (Attrs, bool) {
	id, ok := t.tabs[k.Table].get(k.Dst)
	if !ok {
		return Attrs{}, false
	}
	return *t.attrs.list.at(id), true
}

// Lookup returns the route of table n with the longest prefix that
// contains a.
func (t *Table) Lookup(n uint32, a netip.Addr) (Route, bool) {
	p, id, ok := t.tabs[n].lookup(a)
	if !ok {
		return Route{}, false
	}
	return Route{Table: n, Dst: p, Attrs: *t.attrs.list.at(id)}, true
}

// Set stores r, which must be valid, and reports the attributes its key
// had before.
func (t *Table) Set(r *Route) (old Attrs, had bool) {
	id := t.attrs.ref(&r.Attrs, t.gen)
	oldID, had := t.setID(r.Key(), id)
	if !had {
		return Attrs{}, false
	}
	old = *t.attrs.list.at(oldID)
	t.attrs.unref(oldID, t.gen)
	return old, true
}

// setID makes key k refer to the attributes numbered id, which the caller
// has referenced, and returns the number k had; the caller unreferences
// it.
func (t *Table) setID(k Key, id uint32) (oldID uint32, had bool) {
	tb := t.tabs[k.Table]
	if tb == nil {
		if t.tabs == nil {
			t.tabs = make(map[uint32]*tab)
		}
		tb = new(tab)
		t.tabs[k.Table] = tb
	}
	fi := famIndex(k.Dst.Addr())
	f := &tb.fam[fi]
	s := f.writableShard(k.Dst, t.gen)
	s.t.Modify(k.Dst, func(v uint32, ok bool) (uint32, bool) {
		oldID, had = v, ok
		return id, false
	})
	if !had {
		f.size++
		t.size[fi]++
	}
	return oldID, had
}

// Hold interns a and holds it: its number stays valid until Release,
// whatever routes come and go. A caller that sets many routes to a few
// attributes (a load) holds each once and sets routes with SetHeld, which
// costs no look-up of the attributes.
func (t *Table) Hold(a *Attrs) uint32 { return t.attrs.ref(a, t.gen) }

// SetHeld makes key k refer to the attributes id that the caller holds,
// and reports whether k had a route and whether that changed.
func (t *Table) SetHeld(k Key, id uint32) (had, changed bool) {
	t.attrs.refs[id]++
	oldID, had := t.setID(k, id)
	if had {
		t.attrs.unref(oldID, t.gen)
	}
	return had, !had || oldID != id
}

// Release lets go of attributes that Hold held.
func (t *Table) Release(id uint32) { t.attrs.unref(id, t.gen) }

// Delete removes the route with key k and reports the attributes it had.
func (t *Table) Delete(k Key) (old Attrs, had bool) {
	tb := t.tabs[k.Table]
	if _, ok := tb.get(k.Dst); !ok {
		return Attrs{}, false
	}
	fi := famIndex(k.Dst.Addr())
	f := &tb.fam[fi]
	s := f.writableShard(k.Dst, t.gen)
	var oldID uint32
	s.t.Modify(k.Dst, func(v uint32, ok bool) (uint32, bool) {
		oldID = v
		return 0, true
	})
	f.size--
	t.size[fi]--
	if f.size == 0 && tb.fam[1-fi].size == 0 {
		delete(t.tabs, k.Table)
	}
	old = *t.attrs.list.at(oldID)
	t.attrs.unref(oldID, t.gen)
	return old, true
}

// Clear removes every route of every table.
func (t *Table) Clear() { *t = Table{gen: t.gen + 1} }

// Tables returns the numbers of the tables that have routes, in order.
func (t *Table) Tables() []uint32 { return slices.Sorted(maps.Keys(t.tabs)) }

// All returns the routes of every table: by table number, then in Compare
// order.
func (t *Table) All() iter.Seq[Route] { return all(t.tabs, t.attrs.list) }

// View is a read-only snapshot of a Table, safe to read from any goroutine
// while the Table changes.
type View struct {
	tabs  map[uint32]*tab
	attrs attrList
	size  [2]int
}

// Freeze returns a View of the table as it is now. The table copies a shard
// on its first write after the Freeze.
func (t *Table) Freeze() *View {
	v := &View{tabs: make(map[uint32]*tab, len(t.tabs)), attrs: t.attrs.list.share(), size: t.size}
	for n, tb := range t.tabs {
		c := new(tab)
		for i := range tb.fam {
			f := tb.fam[i]
			f.shards = maps.Clone(f.shards)
			c.fam[i] = f
		}
		v.tabs[n] = c
	}
	t.gen++
	return v
}

// Len returns the number of routes in the view.
func (v *View) Len() int { return v.size[0] + v.size[1] }

// All returns the routes of the view, in the order of Table.All.
func (v *View) All() iter.Seq[Route] { return all(v.tabs, v.attrs) }

// Get returns the attributes of the route with key k.
func (v *View) Get(k Key) (Attrs, bool) {
	id, ok := v.tabs[k.Table].get(k.Dst)
	if !ok {
		return Attrs{}, false
	}
	return *v.attrs.at(id), true
}

// Lookup returns the route of table n with the longest prefix that
// contains a.
func (v *View) Lookup(n uint32, a netip.Addr) (Route, bool) {
	p, id, ok := v.tabs[n].lookup(a)
	if !ok {
		return Route{}, false
	}
	return Route{Table: n, Dst: p, Attrs: *v.attrs.at(id)}, true
}

func all(tabs map[uint32]*tab, attrs attrList) iter.Seq[Route] {
	return func(yield func(Route) bool) {
		for _, n := range slices.Sorted(maps.Keys(tabs)) {
			for i := range tabs[n].fam {
				if !tabs[n].fam[i].all(n, attrs, yield) {
					return
				}
			}
		}
	}
}

// all yields the family's routes in order. A prefix shorter than the shard
// key has only zeros past its first keyBits bits, so it sorts before every
// prefix of the shard with the same key: each shard is preceded by the short
// prefixes of its key.
func (f *family) all(n uint32, attrs attrList, yield func(Route) bool) bool {
	var short []Route
	if f.short != nil {
		for p, id := range f.short.t.AllSorted() {
			short = append(short, Route{Table: n, Dst: p, Attrs: *attrs.at(id)})
		}
	}
	keys := slices.Sorted(maps.Keys(f.shards))
	for _, k := range keys {
		for len(short) > 0 && shardKey(short[0].Dst.Addr()) <= k {
			if !yield(short[0]) {
				return false
			}
			short = short[1:]
		}
		for p, id := range f.shards[k].t.AllSorted() {
			if !yield(Route{Table: n, Dst: p, Attrs: *attrs.at(id)}) {
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

// attrSet interns attributes with reference counts. Freed indexes are
// reused.
type attrSet struct {
	list attrList
	refs []uint32
	ids  map[attrKey]uint32
	free []uint32
	// recent caches indexes by a cheap hash of the attributes, to skip the
	// map (which hashes the whole key) for the few that real tables repeat.
	recent [64]uint32
}

// attrKey is Attrs made comparable: the first next hop inline and the
// others encoded, so that the common single-hop key costs no allocation.
type attrKey struct {
	typ    Type
	proto  Proto
	metric uint32
	src    netip.Addr
	hop    NextHop
	more   string
}

func keyOf(a *Attrs) attrKey {
	k := attrKey{typ: a.Type, proto: a.Proto, metric: a.Metric, src: a.Src}
	if len(a.Hops) > 0 {
		k.hop = a.Hops[0]
	}
	if len(a.Hops) > 1 {
		var b []byte
		// Each hop says how long its gateway is, so that no two lists
		// write the same bytes.
		for _, h := range a.Hops[1:] {
			b = append(b, byte(h.Gateway.BitLen()/8))
			b, _ = h.Gateway.AppendBinary(b)
			b = append(b, byte(h.Weight>>8), byte(h.Weight), byte(len(h.Dev)))
			b = append(b, h.Dev...)
		}
		k.more = string(b)
	}
	return k
}

func recentSlot(a *Attrs) int {
	var x byte
	if len(a.Hops) > 0 {
		g := a.Hops[0].Gateway.As16()
		x = g[15] ^ g[14]*3 ^ byte(len(a.Hops[0].Dev))*7
	}
	return int(x^byte(a.Metric)*5^byte(len(a.Hops))*11) & 63
}

func (h *attrSet) ref(a *Attrs, gen uint64) uint32 {
	slot := recentSlot(a)
	if id := h.recent[slot]; int(id) < h.list.n && h.refs[id] > 0 && h.list.at(id).Equal(a) {
		h.refs[id]++
		return id
	}
	k := keyOf(a)
	if id, ok := h.ids[k]; ok {
		h.refs[id]++
		h.recent[slot] = id
		return id
	}
	if h.ids == nil {
		h.ids = make(map[attrKey]uint32)
	}
	// A copy of its own: the caller's next hops, and their names, may
	// point into a buffer that is reused.
	c := *a
	c.Hops = slices.Clip(slices.Clone(a.Hops))
	for i := range c.Hops {
		c.Hops[i].Dev = strings.Clone(c.Hops[i].Dev)
	}
	var id uint32
	if n := len(h.free); n > 0 {
		id = h.free[n-1]
		h.free = h.free[:n-1]
		*h.list.writable(id, gen) = c
		h.refs[id] = 1
	} else {
		id = h.list.append(c, gen)
		h.refs = append(h.refs, 1)
	}
	h.ids[k] = id
	h.recent[slot] = id
	return id
}

func (h *attrSet) unref(id uint32, gen uint64) {
	h.refs[id]--
	if h.refs[id] == 0 {
		delete(h.ids, keyOf(h.list.at(id)))
		*h.list.writable(id, gen) = Attrs{}
		h.free = append(h.free, id)
	}
}

// attrList holds the interned attributes by index, in chunks that views
// share: a Freeze copies the list of chunks, not the attributes, and the
// table copies a chunk on its first write after a Freeze, as it does a
// shard. So a snapshot costs O(distinct / attrChunkLen) however many
// distinct attributes a table has.
type attrList struct {
	chunks []*attrChunk
	n      int // indexes in use: 0..n-1
}

const attrChunkLen = 256

type attrChunk struct {
	gen uint64
	a   [attrChunkLen]Attrs
}

func (l *attrList) at(id uint32) *Attrs { return &l.chunks[id/attrChunkLen].a[id%attrChunkLen] }

// writable returns the entry id for writing, copying its chunk first if a
// view may share it (its gen is older than gen).
func (l *attrList) writable(id uint32, gen uint64) *Attrs {
	c := l.chunks[id/attrChunkLen]
	if c.gen != gen {
		c = &attrChunk{gen: gen, a: c.a}
		l.chunks[id/attrChunkLen] = c
	}
	return &c.a[id%attrChunkLen]
}

// append stores a in a new index and returns it.
func (l *attrList) append(a Attrs, gen uint64) uint32 {
	id := uint32(l.n)
	if l.n%attrChunkLen == 0 {
		l.chunks = append(l.chunks, &attrChunk{gen: gen})
	}
	l.n++
	*l.writable(id, gen) = a
	return id
}

// share returns a copy of the list that shares its chunks; the caller
// bumps the table's gen, so that the table copies a chunk before writing it.
func (l *attrList) share() attrList {
	return attrList{chunks: slices.Clone(l.chunks), n: l.n}
}

// Interner numbers distinct attributes, for a batch of routes that is
// staged before it reaches a Table. The zero value is empty.
type Interner struct {
	list   []Attrs
	ids    map[attrKey]uint32
	recent [64]uint32 // indexes by recentSlot, as attrSet's
}

// Intern returns the number of a's value, the same for equal values. The
// Interner keeps a's next hops, which must not be modified.
func (in *Interner) Intern(a *Attrs) uint32 {
	slot := recentSlot(a)
	if id := in.recent[slot]; int(id) < len(in.list) && in.list[id].Equal(a) {
		return id
	}
	k := keyOf(a)
	if id, ok := in.ids[k]; ok {
		in.recent[slot] = id
		return id
	}
	if in.ids == nil {
		in.ids = make(map[attrKey]uint32)
	}
	id := uint32(len(in.list))
	in.list = append(in.list, *a)
	in.ids[k] = id
	in.recent[slot] = id
	return id
}

// Attrs returns the attributes numbered id.
func (in *Interner) Attrs(id uint32) *Attrs { return &in.list[id] }

// Len returns the number of distinct attributes.
func (in *Interner) Len() int { return len(in.list) }
