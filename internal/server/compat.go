package server

import (
	"errors"
	"io"
	"net/netip"
	"slices"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// A compat client speaks the classic fixed-size record (internal/compat):
// it never says Hello, it only reads, and it gets the IPv4 routes as one
// CREATE each, then a record per change, each in its own write.

// evCompat is a new compat connection: it is subscribed at once.
type evCompat struct{ c *conn }

// readCompat reads whatever the client writes and ignores it, telling the
// log once; it reports the connection's end.
func (c *conn) readCompat() {
	buf := make([]byte, 4096)
	told := false
	for {
		n, err := c.nc.Read(buf)
		if n > 0 && !told {
			c.s.rates.warn("compat wrote", "compat client wrote to rtmd; ignored (these clients only read)", "client", c)
			told = true
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("closed by client")
			}
			c.gone(err)
			return
		}
	}
}

// compatState is what a compat client has been sent: its table, so that a
// flush becomes a DELETE per route and a resync becomes the difference.
type compatState struct {
	sent    map[netip.Prefix]route.NextHop
	d       wire.Decoder
	skipped int
	rec     []byte
}

// writeCompat writes the queued items to a compat client as records.
func (c *conn) writeCompat(st *compatState, items []item) error {
	if st.sent == nil {
		st.sent = make(map[netip.Prefix]route.NextHop)
	}
	for _, it := range items {
		switch {
		case it.view != nil:
			if err := c.compatSnapshot(st, it.view); err != nil {
				return err
			}
		case it.bufs != nil:
			for _, b := range it.bufs {
				if err := c.compatChanges(st, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// compatSnapshot brings the client to the view: CREATE for what it lacks,
// UPDATE for what differs, DELETE for what is gone. For a new client that
// is one CREATE per IPv4 route.
func (c *conn) compatSnapshot(st *compatState, v *route.View) error {
	next := make(map[netip.Prefix]route.NextHop, len(st.sent))
	for r := range v.All() {
		if !r.Dst.Addr().Is4() {
			break // IPv6 routes come after all IPv4 ones
		}
		next[r.Dst] = r.NextHop
	}
	var gone []netip.Prefix
	for p := range st.sent {
		if _, ok := next[p]; !ok {
			gone = append(gone, p)
		}
	}
	slices.SortFunc(gone, route.Compare)
	for _, p := range gone {
		if err := c.compatRecord(st, compat.Delete, route.Route{Dst: p, NextHop: st.sent[p]}); err != nil {
			return err
		}
	}
	for r := range v.All() {
		if !r.Dst.Addr().Is4() {
			break
		}
		old, had := st.sent[r.Dst]
		switch {
		case !had:
			if err := c.compatRecord(st, compat.Create, r); err != nil {
				return err
			}
		case old != r.NextHop:
			if err := c.compatRecord(st, compat.Update, r); err != nil {
				return err
			}
		}
	}
	st.sent = next
	return nil
}

// compatChanges turns a buffer of Changes frames into records.
func (c *conn) compatChanges(st *compatState, b []byte) error {
	for {
		typ, p, rest, ok := wire.NextFrame(b)
		if !ok {
			return nil // the end of the buffer
		}
		b = rest
		if typ != wire.TChanges {
			continue
		}
		var werr error
		st.d.Changes(p, func(ch wire.Change) {
			if werr != nil {
				return
			}
			switch ch.Op {
			case wire.OpAdd, wire.OpChange:
				if !ch.Route.Dst.Addr().Is4() {
					return
				}
				op := uint32(compat.Create)
				if _, had := st.sent[ch.Route.Dst]; had {
					op = compat.Update
				}
				st.sent[ch.Route.Dst] = ch.Route.NextHop
				werr = c.compatRecord(st, op, ch.Route)
			case wire.OpDel:
				nh, had := st.sent[ch.Route.Dst]
				if !had {
					return
				}
				delete(st.sent, ch.Route.Dst)
				werr = c.compatRecord(st, compat.Delete, route.Route{Dst: ch.Route.Dst, NextHop: nh})
			case wire.OpFlush:
				gone := make([]netip.Prefix, 0, len(st.sent))
				for p := range st.sent {
					gone = append(gone, p)
				}
				slices.SortFunc(gone, route.Compare)
				for _, p := range gone {
					if werr = c.compatRecord(st, compat.Delete, route.Route{Dst: p, NextHop: st.sent[p]}); werr != nil {
						return
					}
				}
				clear(st.sent)
			}
		})
		if werr != nil {
			return werr
		}
	}
}

// compatRecord writes one record in its own write, as these clients read
// one record per read().
func (c *conn) compatRecord(st *compatState, op uint32, r route.Route) error {
	rec, err := compat.Append(st.rec[:0], op, r)
	if err != nil {
		if st.skipped == 0 {
			c.s.rates.warn("compat skipped", "route has no classic form; such routes are skipped for this compat client", "client", c, "route", r.String(), "err", err)
		}
		st.skipped++
		return nil
	}
	st.rec = rec
	if _, err := c.nc.Write(rec); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}
