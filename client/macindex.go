package client

import (
	"runtime"
	"sync/atomic"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

// macIndex maps MACs to their slots in the shared segment, for LookupMAC:
// an open-addressing hash table with linear probing that one goroutine (the
// Mirror's) writes and any goroutine reads, without a lock. Every access to
// an entry is atomic; a writer stores the slot before the key, so a reader
// that finds a key finds its slot. Deleted keys leave tombstones; a table
// that fills up with keys or tombstones is rebuilt into a new one, which is
// then published, so a published table never grows under a reader.
type macIndex struct {
	keys  []atomic.Uint64 // packMAC(k)+1; 0 empty; tomb deleted
	slots []atomic.Uint32
	mask  uint64
	live  int // writer only
	used  int // live and tombstones; writer only
}

const tomb = 1 << 63

func newMACIndex(capacity int) *macIndex {
	n := 16
	for n < capacity*2 {
		n *= 2
	}
	return &macIndex{keys: make([]atomic.Uint64, n), slots: make([]atomic.Uint32, n), mask: uint64(n - 1)}
}

func hashKey(k uint64) uint64 { return (k * 0x9e3779b97f4a7c15) >> 20 }

// get returns the slot of the MAC packed as k.
func (x *macIndex) get(k uint64) (uint32, bool) {
	want := k + 1
	for i := hashKey(k) & x.mask; ; i = (i + 1) & x.mask {
		switch x.keys[i].Load() {
		case want:
			return x.slots[i].Load(), true
		case 0:
			return 0, false
		}
	}
}

// put sets k's slot. It returns the table to publish: x, or a rebuilt one
// when x is too full.
func (x *macIndex) put(k uint64, slot uint32) *macIndex {
	want := k + 1
	i := hashKey(k) & x.mask
	for ; ; i = (i + 1) & x.mask {
		switch x.keys[i].Load() {
		case want:
			x.slots[i].Store(slot)
			return x
		case 0:
			if (x.used+1)*4 > len(x.keys)*3 {
				return x.rebuild(x.live+1).put(k, slot)
			}
			x.slots[i].Store(slot)
			x.keys[i].Store(want)
			x.live++
			x.used++
			return x
		}
	}
}

// del removes k and reports whether it was there.
func (x *macIndex) del(k uint64) bool {
	want := k + 1
	for i := hashKey(k) & x.mask; ; i = (i + 1) & x.mask {
		switch x.keys[i].Load() {
		case want:
			x.keys[i].Store(tomb)
			x.live--
			return true
		case 0:
			return false
		}
	}
}

// rebuild returns a new table with x's live keys and room for n.
func (x *macIndex) rebuild(n int) *macIndex {
	y := newMACIndex(max(n, x.live))
	x.each(func(k uint64, slot uint32) { y.put(k, slot) })
	return y
}

// each calls fn for every live key.
func (x *macIndex) each(fn func(k uint64, slot uint32)) {
	for i := range x.keys {
		if v := x.keys[i].Load(); v != 0 && v != tomb {
			fn(v-1, x.slots[i].Load())
		}
	}
}

// segRef is a mapped segment that readers may hold; it is unmapped when
// the last of them lets go of it, so that LookupMAC never reads a mapping
// that another goroutine just removed.
type segRef struct {
	v *shm.View
	// kick, if set, ends the session that mapped v, so that it resyncs
	// and maps the generation rtmd moves to; it is called once, on the
	// first read that faults (the object was truncated).
	kick   func()
	kicked atomic.Bool
}

func newSegRef(v *shm.View, kick func()) *segRef {
	r := &segRef{v: v, kick: kick}
	runtime.AddCleanup(r, func(v *shm.View) { v.Close() }, v)
	return r
}

// faulted is called after a read of r's segment failed: if it faulted, the
// session that mapped it is kicked, once.
func (r *segRef) faulted() {
	if r.kick != nil && r.v.Faulted() && r.kicked.CompareAndSwap(false, true) {
		r.kick()
	}
}

// packMAC makes a MAC one word, for the index.
func packMAC(k mac.Addr) uint64 {
	return uint64(k[0])<<40 | uint64(k[1])<<32 | uint64(k[2])<<24 | uint64(k[3])<<16 | uint64(k[4])<<8 | uint64(k[5])
}

func unpackMAC(v uint64) mac.Addr {
	return mac.Addr{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}
