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

// compatForm returns the next hop of r if the classic record holds r,
// and counts (and logs, once per client) the routes it does not.
func (c *conn) compatForm(st *compatState, r *route.Route) (route.NextHop, bool) {
	if err := compat.Holds(r); err != nil {
		if st.skipped == 0 {
			c.s.rates.warn("compat skipped", "route has no classic form; such routes are not sent to this compat client", "client", c, "route", r.String(), "err", err)
		}
		st.skipped++
		return route.NextHop{}, false
	}
	return r.Hops[0], true
}

// compatRoute is the route a classic record carries for p through nh.
func compatRoute(p netip.Prefix, nh route.NextHop) route.Route {
	return route.Simple(p, nh.Gateway, nh.Dev)
}

// compatSnapshot brings the client to the view: CREATE for what it lacks,
// UPDATE for what differs, DELETE for what is gone. For a new client that
// is one CREATE per route of the main table that the record holds.
func (c *conn) compatSnapshot(st *compatState, v *route.View) error {
	next := make(map[netip.Prefix]route.NextHop, len(st.sent))
	for r := range v.All() {
		if nh, ok := c.compatForm(st, &r); ok {
			next[r.Dst] = nh
		}
	}
	var gone []netip.Prefix
	for p := range st.sent {
		if _, ok := next[p]; !ok {
			gone = append(gone, p)
		}
	}
	slices.SortFunc(gone, route.Compare)
	for _, p := range gone {
		if err := c.compatRecord(st, compat.Delete, compatRoute(p, st.sent[p])); err != nil {
			return err
		}
	}
	for r := range v.All() {
		nh, ok := next[r.Dst]
		if !ok || r.Table != route.TableMain {
			continue
		}
		old, had := st.sent[r.Dst]
		switch {
		case !had:
			if err := c.compatRecord(st, compat.Create, r); err != nil {
				return err
			}
		case old != nh:
			if err := c.compatRecord(st, compat.Update, r); err != nil {
				return err
			}
		}
	}
	st.sent = next
	return nil
}

// compatChanges turns a buffer of Changes frames into records. A route
// that changes to a form the record cannot hold is deleted from the client.
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
			r := &ch.Route
			switch ch.Op {
			case wire.OpAdd, wire.OpChange:
				old, had := st.sent[r.Dst]
				nh, ok := c.compatForm(st, r)
				switch {
				case ok && had:
					st.sent[r.Dst] = nh
					werr = c.compatRecord(st, compat.Update, *r)
				case ok:
					st.sent[r.Dst] = nh
					werr = c.compatRecord(st, compat.Create, *r)
				case had && r.Table == route.TableMain:
					delete(st.sent, r.Dst)
					werr = c.compatRecord(st, compat.Delete, compatRoute(r.Dst, old))
				}
			case wire.OpDel:
				nh, had := st.sent[r.Dst]
				if !had || r.Table != route.TableMain {
					return
				}
				delete(st.sent, r.Dst)
				werr = c.compatRecord(st, compat.Delete, compatRoute(r.Dst, nh))
			case wire.OpFlush:
				gone := make([]netip.Prefix, 0, len(st.sent))
				for p := range st.sent {
					gone = append(gone, p)
				}
				slices.SortFunc(gone, route.Compare)
				for _, p := range gone {
					if werr = c.compatRecord(st, compat.Delete, compatRoute(p, st.sent[p])); werr != nil {
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
	rec := compat.Route(op, &r)
	st.rec = compat.U16.Append(st.rec[:0], &rec)
	if _, err := c.nc.Write(st.rec); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}
