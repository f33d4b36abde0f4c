package server

import (
	"encoding/binary"
	"fmt"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// loadBatch is a load as a connection's reader stages it while the chunks
// arrive: each chunk's bytes as they came, checked, with the offset of each
// route and its attributes interned in the batch. The loop then only
// inserts, and sends each route on to subscribers as the bytes it came in.
type loadBatch struct {
	chunks []loadChunk
	attrs  route.Interner
	n      int
	d      wire.Decoder
}

type loadChunk struct {
	raw  []byte
	ents []loadEnt
}

type loadEnt struct {
	off  uint32 // of the route in raw; it ends where the next one starts
	attr uint32 // number in attrs
}

// add checks a chunk's routes (a count and routes) and stages them. On an
// error nothing of the chunk is staged; the error names the route's
// position in the batch.
func (b *loadBatch) add(p []byte, max int) error {
	d := &b.d
	d.Reset(p)
	n := int(d.U32("count"))
	if err := d.Err(); err != nil {
		return fmt.Errorf("route load: %w", err)
	}
	if b.n+n > max {
		return fmt.Errorf("route load: more than %d routes in one batch", max)
	}
	if n > len(p)/wire.MinRouteLen {
		return fmt.Errorf("route load: chunk of %d bytes cannot hold %d routes", len(p), n)
	}
	raw := p[4:] // the routes, without the count
	ch := loadChunk{ents: make([]loadEnt, 0, n)}
	for i := 0; i < n && d.Err() == nil; i++ {
		off := d.Offset() - 4
		r := d.Route()
		if d.Err() != nil {
			break
		}
		ch.ents = append(ch.ents, loadEnt{off: uint32(off), attr: b.attrs.Intern(&r.Attrs)})
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("route load: route %d of the batch: %w", b.n+len(ch.ents)+1, err)
	}
	ch.raw = append([]byte(nil), raw...)
	b.chunks = append(b.chunks, ch)
	b.n += n
	return nil
}

// load applies a staged batch as replaces, in order. It was checked when it
// arrived, so nothing here can fail half-way.
func (s *Server) load(b *loadBatch) int {
	// The table holds each of the batch's attributes for the load, so
	// that setting a route costs no look-up of its attributes.
	held := make([]uint32, b.attrs.Len())
	for i := range held {
		held[i] = s.table.Hold(b.attrs.Attrs(uint32(i)))
	}
	defer func() {
		for _, id := range held {
			s.table.Release(id)
		}
	}()
	n := 0
	for _, ch := range b.chunks {
		for i, e := range ch.ents {
			end := len(ch.raw)
			if i+1 < len(ch.ents) {
				end = int(ch.ents[i+1].off)
			}
			raw := ch.raw[e.off:end]
			had, changed := s.table.SetHeld(wire.RouteKey(raw), held[e.attr])
			if !changed {
				continue
			}
			op := byte(wire.OpAdd)
			if had {
				op = wire.OpChange
			}
			s.seq++
			s.changes.AddRaw(s.seq, op, raw)
			n++
		}
	}
	return n
}

// staging is a connection reader's load in progress: the chunks of one
// request id and kind, staged until the final chunk, within the server's
// budget for staged loads (Limits.StagedBytes).
type staging struct {
	id      uint32
	kind    byte // wire.KLoad or wire.KMACLoad; 0 when no load is in progress
	routes  *loadBatch
	macs    []macValue
	bytes   int64 // charged to Server.staged
	refused bool  // the load was refused and answered: its later chunks are dropped
}

// What staged entries cost, for the budget: a MAC entry, and a distinct
// set of route attributes in a load (measured with the version-1 model: 4.4
// million routes, each with its own gateway, held ~190 bytes a route beyond
// their bytes and index). Each next hop of a distinct set past the first
// holds up to ~136 bytes: 48 in the set's list, 35 of its key in the
// batch's interner (rounded up by the allocator), 16 for its interface name,
// 34 in the decoder's cache of lists (TestStagingBudgetCounts32Hops).
const (
	macValueSize   = 48
	stagedAttrSize = 192
	stagedHopSize  = 136
)

// chunk takes one chunk of a load, after the request's id and kind. It
// reports whether ev goes to the loop now: the whole load with its final
// chunk, or, at once, a refusal (permission, a bad route, the budget), after
// which the load's remaining chunks are read and dropped. An error is a
// protocol error that ends the connection.
func (st *staging) chunk(s *Server, ev *evRequest, d *wire.Decoder) (send bool, err error) {
	flags := d.U8("flags")
	if err := d.Err(); err != nil {
		return false, fmt.Errorf("bad request: %w", err)
	}
	if st.kind != 0 && (ev.id != st.id || ev.kind != st.kind) {
		return false, fmt.Errorf("protocol error: load %d (kind %d) started before load %d (kind %d) ended", ev.id, ev.kind, st.id, st.kind)
	}
	final := flags&wire.LoadFinal != 0
	if st.kind == 0 {
		st.id, st.kind = ev.id, ev.kind
	}
	switch {
	case st.refused:
		send = false
	case ev.err != nil: // refused on its first frame by permitted
		send = true
	default:
		if ev.err = st.add(s, ev.kind, d); ev.err != nil {
			send = true
			break
		}
		if final {
			ev.load, ev.macs, ev.staged = st.routes, st.macs, st.bytes
			st.bytes = 0 // the loop releases it
			send = true
		}
	}
	if ev.err != nil {
		st.refused = true
		st.release(s)
	}
	if final {
		st.reset(s)
	}
	return send, nil
}

// add stages a chunk's entries.
func (st *staging) add(s *Server, kind byte, d *wire.Decoder) error {
	if kind == wire.KLoad {
		chunk := d.Rest()
		// Its bytes, and an index entry a route (the count, bounded by
		// what the bytes can hold; add checks it).
		n := len(chunk) / wire.MinRouteLen
		if len(chunk) >= 4 {
			n = min(n, int(binary.LittleEndian.Uint32(chunk)))
		}
		if err := st.charge(s, int64(len(chunk)+8*n)); err != nil {
			return err
		}
		if st.routes == nil {
			st.routes = new(loadBatch)
		}
		distinct := st.routes.attrs.Len()
		if err := st.routes.add(chunk, s.cfg.MaxLoad); err != nil {
			return err
		}
		// Distinct attributes cost their entry in the batch's list and
		// map, and their next hops.
		var cost int64
		for id := distinct; id < st.routes.attrs.Len(); id++ {
			cost += stagedAttrSize + stagedHopSize*int64(max(len(st.routes.attrs.Attrs(uint32(id)).Hops)-1, 0))
		}
		return st.charge(s, cost)
	}
	// A MAC chunk is a count and that many (MAC, address) pairs, staged
	// decoded: MAC loads are small.
	n := d.U32("count")
	if err := d.Err(); err != nil {
		return fmt.Errorf("mac load: %w", err)
	}
	const minEntry = 6 + 1 + 4 + 1
	if uint64(n) > uint64(d.Remaining()/minEntry) {
		return fmt.Errorf("mac load: chunk of %d bytes cannot hold %d entries", d.Remaining(), n)
	}
	if len(st.macs)+int(n) > s.cfg.MaxLoad {
		return fmt.Errorf("mac load: more than %d entries in one batch", s.cfg.MaxLoad)
	}
	if err := st.charge(s, int64(n)*macValueSize); err != nil {
		return err
	}
	for i := uint32(0); i < n && d.Err() == nil; i++ {
		m, ip, dev := d.MACValue()
		st.macs = append(st.macs, macValue{m, ip, dev})
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("mac load: entry %d of the batch: %w", len(st.macs), err)
	}
	return nil
}

// charge takes n bytes of the server's staging budget for this load.
func (st *staging) charge(s *Server, n int64) error {
	if total := s.staged.Add(n); total > s.cfg.Limits.StagedBytes {
		s.staged.Add(-n)
		s.rates.warn("staging budget", "load refused: staging budget used up", "staged_bytes", total-n, "limit", s.cfg.Limits.StagedBytes)
		return fmt.Errorf("load refused: rtmd is staging %d bytes of loads, limit %d (-max-staged); retry later", total-n, s.cfg.Limits.StagedBytes)
	}
	st.bytes += n
	return nil
}

// release gives back the budget and drops what is staged.
func (st *staging) release(s *Server) {
	s.staged.Add(-st.bytes)
	st.bytes, st.routes, st.macs = 0, nil, nil
}

// reset ends the load in progress, releasing what it still holds.
func (st *staging) reset(s *Server) {
	st.release(s)
	*st = staging{}
}
