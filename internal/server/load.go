package server

import (
	"fmt"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// loadBatch is a load as a connection's reader stages it while the chunks
// arrive: each chunk's bytes as they came, checked, with the offset of each
// route and its next hop interned in the batch. The loop then only inserts,
// and sends each route on to subscribers as the bytes it came in.
type loadBatch struct {
	chunks []loadChunk
	hops   []route.NextHop
	hopIDs map[route.NextHop]uint32
	n      int
	d      wire.Decoder
}

type loadChunk struct {
	raw  []byte
	ents []loadEnt
}

type loadEnt struct {
	off uint32 // of the route in raw
	hop uint32 // index in hops
}

// add checks a chunk's routes (a count and routes) and stages them. On an
// error nothing of the chunk is staged; the error names the route's
// position in the batch.
func (b *loadBatch) add(p []byte, max int) error {
	d := &b.d
	d.Reset(p)
	n := int(d.U32("count"))
	if d.Err() == nil && b.n+n > max {
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
		id, ok := b.hopIDs[r.NextHop]
		if !ok {
			if b.hopIDs == nil {
				b.hopIDs = make(map[route.NextHop]uint32)
			}
			id = uint32(len(b.hops))
			b.hops = append(b.hops, r.NextHop)
			b.hopIDs[r.NextHop] = id
		}
		ch.ents = append(ch.ents, loadEnt{off: uint32(off), hop: id})
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
	n := 0
	for _, ch := range b.chunks {
		for _, e := range ch.ents {
			raw := ch.raw[e.off:]
			raw = raw[:wire.RouteLen(raw)]
			nh := b.hops[e.hop]
			old, had := s.table.Set(wire.RoutePrefix(raw), nh)
			if had && old == nh {
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
