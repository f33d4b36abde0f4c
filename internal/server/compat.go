package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// A compat client speaks one of the classic fixed-size record layouts
// (internal/compat): it never says Hello and only reads. It gets one CREATE
// per IPv4 route the record holds, then a record per change. A ghk84
// client first writes its pid; it also gets the MAC entries, a NONE marker
// after each table, a SIGUSR1 on a flush, and a NONE record with loop 0
// before rtmd closes the connection.

// CompatSocket is a compat socket and the record layout it speaks.
type CompatSocket struct {
	Path   string
	Layout *compat.Layout
}

// evCompat is a new compat connection: it is subscribed at once.
type evCompat struct{ c *conn }

// serveCompat runs a compat connection: the ghk84 handshake, then its
// writer, then reading until the client goes. Server.hellos counts it
// until it has been handed to the loop or closed.
func (c *conn) serveCompat() {
	if !c.compatStart() {
		c.close()
		return
	}
	c.readCompat()
}

func (c *conn) compatStart() bool {
	defer c.s.hellos.Done()
	if c.layout.HasMACs() {
		if err := c.compatHello(); err != nil {
			c.s.rates.warn("compat hello", "dropping a ghk84 compat client", "client", c, "err", err)
			return false
		}
	}
	go c.write()
	select {
	case c.s.events <- evCompat{c}:
		return true
	case <-c.s.stopping:
		return false
	}
}

// compatHello reads the pid a ghk84 client writes first and registers it
// for SIGUSR1 under the rules of Server.register: the pid must be the
// socket peer's, and the signal goes through a pidfd of that process. A
// client that may not be signalled is served all the same, and a flush
// reaches it as a DELETE per entry.
func (c *conn) compatHello() error {
	var b [4]byte
	c.nc.SetReadDeadline(time.Now().Add(helloTimeout))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-c.s.stopping: // rtmd stops: do not wait for the pid
			c.nc.SetReadDeadline(time.Now())
		case <-stop:
		}
	}()
	if _, err := io.ReadFull(c.nc, b[:]); err != nil {
		return fmt.Errorf("reading its pid: %w", err)
	}
	c.nc.SetReadDeadline(time.Time{})
	fd, err := signalTarget(c, int32(binary.LittleEndian.Uint32(b[:])))
	if err != nil {
		c.s.rates.warn("compat pid", "ghk84 client not signalled on a flush; it gets DELETEs", "client", c, "err", err)
		return nil
	}
	c.sigfd = fd
	c.signalled = true
	return nil
}

// readCompat reads what the client writes. A ghk84 client says goodbye
// with an int32 1; anything else is ignored, and logged once. A client
// that shuts down its writing side keeps receiving: it is dropped when a
// write to it fails, or when it hangs up.
func (c *conn) readCompat() {
	buf := make([]byte, 64<<10)
	var word []byte // ghk84: the int32 being read
	told := false
	for {
		n, err := c.nc.Read(buf)
		if c.layout.HasMACs() {
			for _, b := range buf[:n] {
				if word = append(word, b); len(word) < 4 {
					continue
				}
				if binary.LittleEndian.Uint32(word) == 1 {
					c.close()
					c.gone(errors.New("goodbye"))
					return
				}
				word = word[:0]
			}
		}
		if n > 0 && !told {
			c.s.rates.warn("compat wrote", "compat client wrote to rtmd; ignored", "client", c)
			told = true
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			c.watchHangup()
			return
		default:
			c.gone(err)
			return
		}
	}
}

// watchHangup waits, after the client shut down its writing side, until
// it closes the connection altogether (POLLHUP) or rtmd does.
func (c *conn) watchHangup() {
	raw, err := c.nc.(*net.UnixConn).SyscallConn()
	if err != nil {
		c.gone(err)
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			c.gone(errors.New("closed"))
			return
		case <-t.C:
		}
		hup := false
		raw.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if n, err := unix.Poll(p, 0); n == 1 && err == nil {
				hup = p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
			}
		})
		if hup {
			c.close()
			c.gone(errors.New("closed by client"))
			return
		}
	}
}

// unread returns how much of what rtmd wrote the client has not read yet
// (SIOCOUTQ: zero once it has read everything).
func (c *conn) unread() (int, error) {
	raw, err := c.nc.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	n, ierr := 0, error(nil)
	if err := raw.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
	}); err != nil {
		return 0, err
	}
	return n, ierr
}

// waitRead waits until the client has read everything written to it, for
// at most d.
func (c *conn) waitRead(d time.Duration) error {
	deadline := time.Now().Add(d)
	for pause := 50 * time.Microsecond; ; pause = min(2*pause, 20*time.Millisecond) {
		n, err := c.unread()
		switch {
		case err != nil:
			return err
		case n == 0:
			return nil
		case time.Now().After(deadline):
			return os.ErrDeadlineExceeded
		}
		select {
		case <-time.After(pause):
		case <-c.done:
			return net.ErrClosed
		}
	}
}

// compatState is what the writer has sent a compat client: its routes and
// MAC entries, so that a flush becomes a DELETE per entry and a resync the
// difference; and the records not yet written.
type compatState struct {
	layout  *compat.Layout
	sent    map[netip.Prefix]route.NextHop
	macs    map[mac.Addr]bool // ghk84
	d       wire.Decoder
	skipped int
	out     []byte // whole records, written at most chunk bytes at a time
	chunk   int
	rec     compat.Record
	// A MAC DELETE (or a flush signal) in what is being written
	// (conn.deletedAt).
	deleted bool
}

func newCompatState(l *compat.Layout) *compatState {
	return &compatState{
		layout: l,
		sent:   make(map[netip.Prefix]route.NextHop),
		macs:   make(map[mac.Addr]bool),
		// A write of whole records no larger than this is one buffer of
		// the socket, so a client that reads one record at a time never
		// reads part of one.
		chunk: 4096 / l.Size * l.Size,
	}
}

// writeCompat writes the queued items to a compat client as records.
func (c *conn) writeCompat(st *compatState, items []item) error {
	for _, it := range items {
		var err error
		switch {
		case it.goodbye:
			return c.compatGoodbye(st)
		case it.view != nil:
			err = c.compatSnapshot(st, it)
		case it.bufs != nil:
			for _, b := range it.bufs {
				if err = c.compatChanges(st, b); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return c.compatFlush(st)
}

// compatForm returns the next hop of r if the record holds r, and counts
// (and logs, once per client) the routes it does not.
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

// compatSnapshot brings the client to the view: DELETE for what is gone,
// CREATE for what it lacks, UPDATE for what differs. For a new client that
// is one CREATE per route the record holds. A ghk84 client gets the same
// for the MAC entries, and, when new, a NONE marker after each table.
func (c *conn) compatSnapshot(st *compatState, it item) error {
	next := make(map[netip.Prefix]route.NextHop, len(st.sent))
	for r := range it.view.All() {
		if nh, ok := c.compatForm(st, &r); ok {
			next[r.Dst] = nh
		}
	}
	if err := c.compatDeleteRoutes(st, func(p netip.Prefix) bool { _, ok := next[p]; return !ok }, compat.Wait); err != nil {
		return err
	}
	for r := range it.view.All() {
		nh, ok := next[r.Dst]
		if !ok || r.Table != route.TableMain {
			continue
		}
		old, had := st.sent[r.Dst]
		var err error
		switch {
		case !had:
			err = c.compatRoute(st, compat.Create, r.Dst, nh, compat.Wait)
		case old != nh:
			err = c.compatRoute(st, compat.Update, r.Dst, nh, compat.Wait)
		}
		if err != nil {
			return err
		}
	}
	st.sent = next
	if !st.layout.HasMACs() {
		return nil
	}
	// The markers end a new client's tables. After a resync they would
	// read as a flush.
	first := it.reason == wire.ReasonNew
	if first {
		if err := c.compatMarker(st, compat.Routes, compat.RoutesDone); err != nil {
			return err
		}
	}
	// MAC entries: those with an object now. One that changes after the
	// view follows in the stream.
	in := make(map[mac.Addr]bool, len(it.macs.slots))
	for _, ms := range it.macs.slots {
		in[ms.mac] = true
	}
	if err := c.compatDeleteMACs(st, func(m mac.Addr) bool { return !in[m] || !c.s.objects.has(m) }, compat.Wait); err != nil {
		return err
	}
	for _, ms := range it.macs.slots {
		if !st.macs[ms.mac] && c.s.objects.has(ms.mac) {
			if err := c.compatMAC(st, compat.Create, ms.mac, compat.Wait); err != nil {
				return err
			}
		}
	}
	if !first {
		return nil
	}
	return c.compatMarker(st, compat.MACs, compat.MACsDone)
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
			if werr == nil {
				werr = c.compatChange(st, &ch)
			}
		})
		if werr != nil {
			return werr
		}
	}
}

func (c *conn) compatChange(st *compatState, ch *wire.Change) error {
	r := &ch.Route
	switch ch.Op {
	case wire.OpAdd, wire.OpChange:
		old, had := st.sent[r.Dst]
		nh, ok := c.compatForm(st, r)
		switch {
		case ok && had:
			st.sent[r.Dst] = nh
			return c.compatRoute(st, compat.Update, r.Dst, nh, compat.RoutesDone)
		case ok:
			st.sent[r.Dst] = nh
			return c.compatRoute(st, compat.Create, r.Dst, nh, compat.RoutesDone)
		case had && r.Table == route.TableMain:
			delete(st.sent, r.Dst)
			return c.compatRoute(st, compat.Delete, r.Dst, old, compat.RoutesDone)
		}
	case wire.OpDel:
		if nh, had := st.sent[r.Dst]; had && r.Table == route.TableMain {
			delete(st.sent, r.Dst)
			return c.compatRoute(st, compat.Delete, r.Dst, nh, compat.RoutesDone)
		}
	case wire.OpMACAdd, wire.OpMACChange:
		if !st.layout.HasMACs() {
			return nil
		}
		// The IP is in the object; a change of it needs no record.
		switch has := c.s.objects.has(ch.MAC); {
		case has && !st.macs[ch.MAC]:
			return c.compatMAC(st, compat.Create, ch.MAC, compat.MACsDone)
		case !has && st.macs[ch.MAC]:
			return c.compatMAC(st, compat.Delete, ch.MAC, compat.MACsDone)
		}
	case wire.OpMACDel:
		if st.macs[ch.MAC] {
			return c.compatMAC(st, compat.Delete, ch.MAC, compat.MACsDone)
		}
	case wire.OpFlush:
		return c.compatFlushTables(st)
	}
	return nil
}

// flushReadWait is how long a registered ghk84 client has, at a flush, to
// read what it was sent before: its SIGUSR1 handler empties its tables, and
// a record it read after that would come back.
const flushReadWait = time.Second

// compatFlushTables empties the client's tables. A registered ghk84 client
// is signalled once it has read every record sent before the flush, and
// sent a NONE record. The others, and one that has not read them within
// flushReadWait (say, it waits at a prompt), get a DELETE per entry.
func (c *conn) compatFlushTables(st *compatState) error {
	if c.sigfd >= 0 {
		if err := c.compatFlush(st); err != nil {
			return err
		}
		err := c.waitRead(flushReadWait)
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		if err == nil {
			err = unix.PidfdSendSignal(c.sigfd, unix.SIGUSR1, nil, 0)
		}
		if err == nil {
			clear(st.sent)
			st.deleted = st.deleted || len(st.macs) > 0
			clear(st.macs)
			return c.compatMarker(st, compat.Routes, compat.RoutesDone)
		}
		c.s.rates.info("compat flush", "ghk84 client not signalled for a flush; it gets a DELETE per entry", "client", c, "reason", err)
	}
	if err := c.compatDeleteRoutes(st, func(netip.Prefix) bool { return true }, compat.RoutesDone); err != nil {
		return err
	}
	if !st.layout.HasMACs() {
		return nil
	}
	if err := c.compatDeleteMACs(st, func(mac.Addr) bool { return true }, compat.MACsDone); err != nil {
		return err
	}
	return c.compatMarker(st, compat.Routes, compat.RoutesDone)
}

// compatDeleteRoutes sends a DELETE, in prefix order, for each route the
// client has that gone picks, and forgets it.
func (c *conn) compatDeleteRoutes(st *compatState, gone func(netip.Prefix) bool, sync int32) error {
	var ps []netip.Prefix
	for p := range st.sent {
		if gone(p) {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, route.Compare)
	for _, p := range ps {
		if err := c.compatRoute(st, compat.Delete, p, st.sent[p], sync); err != nil {
			return err
		}
		delete(st.sent, p)
	}
	return nil
}

// compatDeleteMACs sends a DELETE, in MAC order, for each MAC entry the
// client has that gone picks (compatMAC forgets it).
func (c *conn) compatDeleteMACs(st *compatState, gone func(mac.Addr) bool, sync int32) error {
	var ms []mac.Addr
	for m := range st.macs {
		if gone(m) {
			ms = append(ms, m)
		}
	}
	slices.SortFunc(ms, mac.Compare)
	for _, m := range ms {
		if err := c.compatMAC(st, compat.Delete, m, sync); err != nil {
			return err
		}
	}
	return nil
}

// compatGoodbye tells a ghk84 client that rtmd is going away (a NONE record
// with loop 0), gives it a moment to read it, and closes the connection.
func (c *conn) compatGoodbye(st *compatState) error {
	if st.layout.HasMACs() {
		st.rec = compat.Record{Op: compat.None}
		st.out = st.layout.Append(st.out, &st.rec)
		if c.compatFlush(st) == nil {
			c.waitRead(time.Second)
		}
	}
	c.close()
	return net.ErrClosed
}

func (c *conn) compatRoute(st *compatState, op uint32, p netip.Prefix, nh route.NextHop, sync int32) error {
	st.rec = compat.Record{Op: op, Table: compat.Routes, Dst: p, Gateway: nh.Gateway, Dev: nh.Dev, Sync: sync, Loop: 1}
	return c.compatRecord(st)
}

func (c *conn) compatMAC(st *compatState, op uint32, m mac.Addr, sync int32) error {
	if op == compat.Delete {
		delete(st.macs, m)
		st.deleted = true
	} else {
		st.macs[m] = true
	}
	st.rec = compat.Record{Op: op, Table: compat.MACs, MAC: m, Sync: sync, Loop: 1}
	return c.compatRecord(st)
}

func (c *conn) compatMarker(st *compatState, table uint32, sync int32) error {
	st.rec = compat.Record{Op: compat.None, Table: table, Sync: sync, Loop: 1}
	return c.compatRecord(st)
}

// compatRecord adds st.rec to what is to be written.
func (c *conn) compatRecord(st *compatState) error {
	if len(st.out)+st.layout.Size > st.chunk {
		if err := c.compatFlush(st); err != nil {
			return err
		}
	}
	st.out = st.layout.Append(st.out, &st.rec)
	return nil
}

// compatFlush writes the records not yet written, in one write.
func (c *conn) compatFlush(st *compatState) error {
	if len(st.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(st.out)
	st.out = st.out[:0]
	if err != nil {
		c.writeFailed(err)
	}
	return err
}
