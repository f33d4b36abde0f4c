package server

// The loop: the one goroutine that owns the tables and the sequence number.
// It takes events from every source, applies a turn's worth, then publishes
// the turn's changes to every subscriber and the turn's replies.

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// event is what sources send the loop.
type event interface{}

type (
	evHello struct{ c *conn } // a client completed the handshake
	evGone  struct {
		c   *conn
		err error
	}
	evRequest struct {
		c       *conn // nil from the console
		id      uint32
		kind    byte
		route   route.Route    // add, change, replace
		sel     route.Selector // del, route flush
		table   uint32         // get: the table to look in; 0 for main
		addr    netip.Addr     // get
		load    *loadBatch     // load: checked and staged by the reader
		batch   *batch         // batch: checked and staged by the reader
		staged  int64          // bytes of Server.staged that load or macs hold; the loop releases them
		mac     mac.Addr       // the MAC requests
		ip      netip.Addr     // MAC add, change, replace
		dev     string         // MAC add, change, replace: the interface, or ""
		pid     int32          // register
		resume  bool           // subscribe: resume after sequence after of history
		history [wire.HistoryLen]byte
		after   uint64
		line    int          // queue: the line of the message
		macs    []macValue   // MAC load
		err     error        // the reader found the request bad; the loop replies with it
		done    func(Result) // console: called on the loop; must not block
	}
	evResync struct{ c *conn } // the writer is idle and the client needs a new snapshot
	evView   struct{ done func(*route.View, uint64) }
	evMACs   struct{ done func([]macValue) }
)

// Result is the outcome of a request from the console.
type Result struct {
	Err     error
	Seq     uint64 // the sequence number after the request
	Route   route.Route
	Changes int    // routes or entries changed by a load or a flush
	Text    string // the clients, as JSON
	MACSeg  wire.MACSeg
	Failed  []batchFailure // batch: the entries that failed
}

// batchFailure is an entry of a batch that failed.
type batchFailure struct {
	index int
	err   error
}

func (s *Server) loop(ctx context.Context) {
	// While MAC objects wait for ghk84 clients to read their DELETE, the
	// loop looks every sweepEvery.
	var sweep *time.Ticker
	if s.objects != nil {
		sweep = time.NewTicker(sweepEvery)
		defer sweep.Stop()
	}
	for {
		var tick <-chan time.Time
		if s.objects != nil && len(s.objects.pending) > 0 {
			tick = sweep.C
		}
		select {
		case ev := <-s.events:
			s.handle(ev)
		case <-tick:
		case c := <-s.compacted:
			s.compactionDone(c)
		case <-ctx.Done():
			return
		}
	drain:
		for range 256 {
			select {
			case ev := <-s.events:
				s.handle(ev)
			default:
				break drain
			}
		}
		s.publish()
		s.maybeCompact()
		s.sweepObjects()
		if s.halt != nil {
			s.log.Error("rtmd stops", "err", s.halt)
			return
		}
	}
}

const sweepEvery = 20 * time.Millisecond

// sweepObjects removes the objects of deleted MACs that no ghk84 client
// may still read: a client may read the object of a MAC it was sent until
// it has read the DELETE. More than pendingMax objects kept for clients
// that do not read are too many: the one furthest behind is dropped.
func (s *Server) sweepObjects() {
	if s.objects == nil || len(s.objects.pending) == 0 {
		return
	}
	read := s.seq
	var slowest *conn
	for c := range s.clients {
		if c.input != inCompat || !c.layout.HasMACs() {
			continue
		}
		if r := s.released(c); r < read {
			read, slowest = r, c
		}
	}
	if held := s.objects.sweep(read); held > pendingMax {
		s.rates.warn("mac objects", "dropping a ghk84 client that has not read its MAC DELETEs: it kept too many objects of deleted MACs in /dev/shm",
			"client", slowest, "objects", held, "max", pendingMax)
		slowest.close()
		delete(s.clients, slowest) // its reader's evGone finds it gone
	}
}

// pendingMax is how many objects of deleted MACs may wait for ghk84
// clients to read their DELETEs (4 KiB of /dev/shm each).
const pendingMax = 4096

// released returns the sequence number through which ghk84 client c holds
// no object of a deleted MAC: all it was written, if it has read every
// DELETE it was written; else what it was written when it had last read
// everything (its socket held nothing unread).
func (s *Server) released(c *conn) uint64 {
	d := c.delivered.Load() // before deletedAt: see conn.deletedAt
	if c.deletedAt.Load() <= c.readAll {
		return d
	}
	if n, err := c.unread(); err == nil && n == 0 {
		c.readAll = d
	}
	return c.readAll
}

func (s *Server) handle(ev event) {
	switch ev := ev.(type) {
	case evHello:
		s.clients[ev.c] = struct{}{}
		ev.c.enqueue(wire.AppendWelcome(nil, s.seq, s.cfg.Version, s.history))
	case evGone:
		if _, ok := s.clients[ev.c]; ok {
			delete(s.clients, ev.c)
			registered := ev.c.pidfd >= 0
			if registered {
				unix.Close(ev.c.pidfd)
				ev.c.pidfd = -1
			}
			// Subscribers and registered clients are worth a line; the
			// rtm commands that come and go are not.
			switch {
			case ev.err.Error() == "goodbye" && (registered || ev.c.subscribed):
				s.rates.info("goodbye", "client said goodbye", "client", ev.c)
			case registered:
				s.rates.info("gone registered", "registered client gone without goodbye", "client", ev.c, "reason", ev.err)
			case ev.c.subscribed:
				s.rates.info("gone subscriber", "subscriber gone", "client", ev.c, "reason", ev.err)
			default:
				s.log.Debug("client gone", "client", ev.c, "reason", ev.err)
			}
		}
		ev.c.close()
	case evRequest:
		s.request(ev)
	case evResync:
		if _, ok := s.clients[ev.c]; ok {
			ev.c.resyncs++
			s.snapshot(ev.c, wire.ReasonBacklog)
		}
	case evView:
		s.publish()
		ev.done(s.table.Freeze(), s.seq)
	case evMACs:
		ev.done(s.macs.values())
	case evQueue:
		s.queueMessage(ev)
	case evCompat:
		s.clients[ev.c] = struct{}{}
		s.snapshot(ev.c, wire.ReasonNew)
	}
}

func (s *Server) request(r evRequest) {
	if r.c != nil {
		defer r.c.answered(1, 0) // after its reply is queued
	}
	var res Result
	in := inConsole
	if r.c != nil {
		in = r.c.input
	}
	switch {
	case r.err != nil:
		res.Err = r.err
	default:
		s.apply(r, &res)
	}
	switch {
	case r.kind == wire.KBatch && res.Err == nil:
		s.inputs[in].accepted += uint64(res.Changes)
		s.inputs[in].rejected += uint64(len(res.Failed))
	case res.Err != nil:
		s.inputs[in].rejected++
	default:
		s.inputs[in].accepted++
	}
	if r.staged > 0 {
		s.staged.Add(-r.staged)
	}
	if r.kind == wire.KSubscribe && res.Err == nil {
		return // the snapshot is the answer
	}
	s.reply(r, res)
}

func (s *Server) apply(r evRequest, res *Result) {
	// A connection's reader has checked its permissions (conn.permitted);
	// the queue's are its mode, and the console is rtmd's operator.
	switch r.kind {
	case wire.KFlush:
		s.flush()
	case wire.KRegister:
		res.Err = s.register(r.c, r.pid)
	case wire.KClients:
		// The one large reply: a peer that asks for it again and again
		// without reading gets a short refusal instead.
		if r.c != nil && r.c.unreadReplies() > replyRoom {
			n := r.c.unreadReplies()
			res.Err = fmt.Errorf("busy: %d bytes of replies are unread by this client; read them before asking for the client list again", n)
			break
		}
		res.Text = s.clientsJSON()
	case wire.KStatus:
		res.Text = s.statusJSON(r.c != nil && r.c.input == inTCP)
	case wire.KAdd, wire.KChange, wire.KReplace:
		res.Err = s.set(r.kind, r.route)
	case wire.KDel:
		res.Err = s.del(r.sel)
	case wire.KRouteFlush:
		res.Changes = s.flushRoutes(r.sel)
	case wire.KBatch:
		s.applyBatch(r, res)
	case wire.KLoad:
		start := time.Now()
		res.Changes = s.load(r.load)
		s.log.Debug("load applied", "changes", res.Changes, "seq", s.seq, "took", time.Since(start))
		if r.load.n >= 100_000 {
			// The staged batch is garbage now; give its pages back rather
			// than keep a big load's peak as rtmd's size.
			s.freeMemorySoon()
		}
	case wire.KMACAdd, wire.KMACChange, wire.KMACReplace:
		res.Err = s.setMAC(r.kind, macValue{r.mac, r.ip, r.dev})
	case wire.KMACDel:
		had, err := s.macs.del(r.mac)
		if err != nil {
			res.Err = err
			break
		}
		if !had {
			res.Err = errNotFound("no entry for mac %v", r.mac)
			break
		}
		s.seq++
		s.changes.AddMAC(s.seq, wire.OpMACDel, r.mac, 0, netip.Addr{}, "")
		if s.objects != nil {
			s.objects.gone(r.mac, s.seq)
		}
	case wire.KMACLoad:
		// Room for every new key first, so that a failure to grow leaves
		// the table as it was.
		if res.Err = s.macs.reserveFor(r.macs); res.Err != nil {
			s.log.Error("MAC load refused", "entries", len(r.macs), "err", res.Err)
			break
		}
		for _, kv := range r.macs {
			if res.Err = s.setMAC(wire.KMACReplace, kv); res.Err != nil {
				break // only a segment that failed, and no new one
			}
			res.Changes++
		}
	case wire.KMACSeg:
		if err := s.macs.check(); err != nil {
			s.log.Error("MAC table", "err", err)
		}
		res.MACSeg = s.macs.segInfo()
	case wire.KGet:
		n := cmp.Or(r.table, route.TableMain)
		var ok bool
		if res.Route, ok = s.table.Lookup(n, r.addr); !ok {
			res.Err = errNotFound("no route to %v in table %s", r.addr, route.TableName(n))
		}
	case wire.KSubscribe:
		if r.c == nil || r.c.subscribed {
			res.Err = errors.New("already subscribed")
			break
		}
		reason := byte(wire.ReasonNew)
		if r.resume {
			if !s.continues(r.history, r.after) {
				reason = wire.ReasonHistory
			} else if s.resume(r.c, r.after) {
				break
			}
		}
		s.snapshot(r.c, reason)
	default:
		res.Err = fmt.Errorf("unknown request kind %d", r.kind)
	}
}

func (s *Server) reply(r evRequest, res Result) {
	res.Seq = s.seq
	mutated := isMutation(r.kind) && res.Err == nil
	if r.done != nil {
		s.replies = append(s.replies, pendingReply{done: r.done, res: res, mutated: mutated})
		return
	}
	var b []byte
	switch {
	case res.Err != nil:
		b = wire.AppendErrorReply(nil, r.id, statusOf(res.Err), res.Err.Error())
	case r.kind == wire.KGet:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendRoute(nil, res.Route))
	case r.kind == wire.KClients || r.kind == wire.KStatus:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendText(nil, res.Text))
	case r.kind == wire.KLoad || r.kind == wire.KMACLoad || r.kind == wire.KRouteFlush:
		body := binary.LittleEndian.AppendUint64(nil, uint64(res.Changes))
		b = wire.AppendReply(nil, r.id, wire.StatusOK, binary.LittleEndian.AppendUint64(body, res.Seq))
	case r.kind == wire.KMACSeg:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendMACSegBody(nil, res.MACSeg))
	case r.kind == wire.KBatch:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, batchReply(res))
	case isMutation(r.kind):
		b = wire.AppendReply(nil, r.id, wire.StatusOK, binary.LittleEndian.AppendUint64(nil, res.Seq))
	default:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, nil)
	}
	r.c.countReply(len(b)) // from now on, not when it is queued
	s.replies = append(s.replies, pendingReply{c: r.c, b: b, id: r.id, mutated: mutated})
}

func (s *Server) set(kind byte, r route.Route) error {
	old, had := s.table.Get(r.Key())
	switch {
	case kind == wire.KAdd && had:
		return errExists("route %s exists (%s)", keyText(r.Key()), route.Route{Table: r.Table, Dst: r.Dst, Attrs: old})
	case kind == wire.KChange && !had:
		return errNotFound("no route %s", keyText(r.Key()))
	case had && old.Equal(&r.Attrs):
		return nil // nothing changes, so no sequence number is used
	}
	s.notePrior(r.Key(), old, had)
	s.table.Set(&r)
	op := byte(wire.OpAdd)
	if had {
		op = wire.OpChange
	}
	s.seq++
	s.changes.Add(s.seq, op, r)
	return nil
}

// applyBatch applies the entries of a batch in order, each as the request
// of its kind, and stops at the first that fails unless the batch says
// force. res.Changes counts the entries applied.
func (s *Server) applyBatch(r evRequest, res *Result) {
	b := r.batch
	if b.err != nil {
		res.Err = b.err
		return
	}
	var d wire.Decoder
	for i, e := range batchEntries(b.raw, b.n) {
		// The reader checked every entry.
		sub := evRequest{c: r.c, kind: e.kind}
		d.Reset(e.body)
		decodeChange(&d, &sub)
		var sr Result
		s.apply(sub, &sr)
		if sr.Err != nil {
			res.Failed = append(res.Failed, batchFailure{i, sr.Err})
			if !b.force {
				return
			}
			continue
		}
		res.Changes++
	}
}

// maxBatchMessages bounds the error messages in a batch reply; past it the
// failures are sent with their index and status only.
const maxBatchMessages = 64 << 10

// batchReply is the body of a batch's reply: sequence uint64, entries
// applied uint32, failures uint32, and each failure: index uint32, status
// uint8, message (string).
func batchReply(res Result) []byte {
	b := binary.LittleEndian.AppendUint64(nil, res.Seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(res.Changes))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(res.Failed)))
	msgs := 0
	for _, f := range res.Failed {
		b = binary.LittleEndian.AppendUint32(b, uint32(f.index))
		b = append(b, statusOf(f.err))
		msg := f.err.Error()
		if msgs += len(msg); msgs > maxBatchMessages {
			msg = ""
		}
		b = wire.AppendString(b, msg)
	}
	return b
}

// keyText names a route's key in messages: "10.0.0.0/8 table main".
func keyText(k route.Key) string {
	return k.Dst.String() + " table " + route.TableName(k.Table)
}

// del deletes the route with the selector's table and exact prefix, if it
// also has what else the selector names (as `ip route del` does).
func (s *Server) del(sel route.Selector) error {
	if sel.Mode != route.Exact || sel.Table == 0 {
		return fmt.Errorf("route del needs a table and an exact prefix")
	}
	k := route.Key{Table: sel.Table, Dst: sel.Prefix}
	a, had := s.table.Get(k)
	if r := (route.Route{Table: k.Table, Dst: k.Dst, Attrs: a}); !had || !sel.Select(&r) {
		return errNotFound("no route %s matches", keyText(k))
	}
	s.notePrior(k, a, true)
	s.table.Delete(k)
	s.seq++
	s.changes.Add(s.seq, wire.OpDel, route.Route{Table: k.Table, Dst: k.Dst})
	return nil
}

// flushRoutes deletes every route the selector picks and reports how many.
func (s *Server) flushRoutes(sel route.Selector) int {
	var gone []route.Route
	for r := range s.table.All() {
		if sel.Select(&r) {
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		k := r.Key()
		s.notePrior(k, r.Attrs, true)
		s.table.Delete(k)
		s.seq++
		s.changes.Add(s.seq, wire.OpDel, route.Route{Table: k.Table, Dst: k.Dst})
	}
	return len(gone)
}

// setMAC applies a MAC add, change or replace: the record first, then the
// change that names it (and, if the segment grew, the new segment before
// that).
func (s *Server) setMAC(kind byte, v macValue) error {
	e, had := s.macs.entries[v.mac]
	switch {
	case kind == wire.KMACAdd && had:
		return errExists("mac %v exists (ip %v)", v.mac, e.ip)
	case kind == wire.KMACChange && !had:
		return errNotFound("no entry for mac %v", v.mac)
	}
	e, had, changed, err := s.macs.set(v.mac, v.ip, v.dev)
	if err != nil {
		s.log.Error("MAC table", "err", err)
		return err
	}
	if !changed {
		return nil
	}
	op := byte(wire.OpMACAdd)
	if had {
		op = wire.OpMACChange
	}
	s.seq++
	if s.objects != nil {
		if err := s.objects.set(v.mac, v.ip, s.seq); err != nil {
			s.rates.warn("mac object", "MAC entry not sent to ghk84 compat clients", "mac", v.mac, "err", err)
		}
	}
	s.changes.AddMAC(s.seq, op, v.mac, e.slot, v.ip, v.dev)
	return nil
}

// snapshot queues a consistent snapshot at the current sequence for c,
// after every change already published, and subscribes c from then on.
// The turn's changes so far are published first, while a new subscriber
// is not yet subscribed: they are in its snapshot, and its stream must
// begin with SnapBegin.
func (s *Server) snapshot(c *conn, reason byte) {
	if err := s.macs.check(); err != nil {
		s.log.Error("MAC table", "err", err)
	}
	s.publish()
	c.subscribed = true
	c.enqueueSnapshot(s.table.Freeze(), s.macs.freeze(), s.seq, reason)
}

// publish sends the changes of this turn to every subscriber, then the
// replies of this turn, so that a client that is told its change is done
// has already been sent it.
//
// With a state directory, the changes are stored first (one write and one
// fsync for the turn). Changes that cannot be stored are undone, and the
// requests that made them are told so.
func (s *Server) publish() {
	var notStored error
	if s.changes.Len() > 0 {
		bufs := s.changes.Take()
		if s.persist != nil {
			if err := s.persist.commit(bufs); err != nil {
				notStored = fmt.Errorf("not stored, undone: %w", err)
				s.undo(err)
			}
		}
		if notStored == nil {
			if err := s.macs.setCounters(s.seq); err != nil {
				s.log.Error("MAC table", "err", err)
			}
			for c := range s.clients {
				if c.subscribed {
					c.enqueueChanges(bufs, s.seq)
				}
			}
			s.window.add(s.published+1, s.seq, bufs)
			s.published = s.seq
		}
		s.forgetPriors()
	}
	for _, r := range s.replies {
		if notStored != nil && r.mutated {
			r.res = Result{Err: notStored, Seq: s.seq}
			if r.c != nil {
				b := wire.AppendErrorReply(nil, r.id, wire.StatusError, notStored.Error())
				r.c.countReply(len(b) - len(r.b))
				r.b = b
			}
		}
		if r.done != nil {
			r.done(r.res)
			continue
		}
		r.c.push(item{b: r.b, size: len(r.b)}) // counted by reply
	}
	clear(s.replies)
	s.replies = s.replies[:0]
	if s.flushing {
		s.flushing = false
		if notStored == nil {
			s.signalFlush()
		}
	}
}

// undo puts the tables back to what the state directory holds after the
// turn's changes failed to be stored (err), and resends every subscriber
// the table: the MAC entries may have moved to other slots. If the state
// cannot be read back either, rtmd stops.
func (s *Server) undo(err error) {
	s.log.Error("state: a turn's changes could not be stored; they are undone and their requests refused", "err", err)
	if uint64(len(s.priors)) == s.seq-s.published {
		// Every change of the turn was a route change that notePrior
		// saw: put back what they replaced. Subscribers were sent
		// nothing of them.
		for _, p := range slices.Backward(s.priors) {
			if p.had {
				s.table.Set(&route.Route{Table: p.k.Table, Dst: p.k.Dst, Attrs: p.a})
			} else {
				s.table.Delete(p.k)
			}
		}
		s.seq = s.published
		return
	}
	// A load, a flush or a MAC change (which clients may have read in the
	// segment): read the stored state back, and send subscribers the
	// table.
	rec, _, rerr := s.persist.read(false, 0)
	if rerr == nil {
		rerr = s.restore(rec)
	}
	if rerr != nil {
		s.halt = fmt.Errorf("after a failed write (%v), the stored state could not be read back: %w", err, rerr)
		return
	}
	v, macs := s.table.Freeze(), s.macs.freeze()
	for c := range s.clients {
		if c.subscribed {
			c.resyncs++
			c.enqueueSnapshot(v, macs, s.seq, wire.ReasonBacklog)
		}
	}
}

// prior is what a route change replaced: the route's attributes, if it
// had any.
type prior struct {
	k   route.Key
	a   route.Attrs
	had bool
}

// notePrior keeps what a route change of this turn replaces, so that undo
// can put it back without reading the state directory.
func (s *Server) notePrior(k route.Key, a route.Attrs, had bool) {
	if s.persist != nil {
		s.priors = append(s.priors, prior{k, a, had})
	}
}

// forgetPriors is called once a turn is stored or undone.
func (s *Server) forgetPriors() {
	if cap(s.priors) > 4096 {
		s.priors = nil // a big flush's: let it go
	}
	clear(s.priors)
	s.priors = s.priors[:0]
}

// restore makes the tables what rec holds.
func (s *Server) restore(rec *recovered) error {
	s.table = rec.table
	s.seq, s.published = rec.seq, rec.seq
	if err := s.macs.restore(rec.macs); err != nil {
		return err
	}
	if s.objects != nil {
		s.objects.clear(s.seq)
		for m, e := range rec.macs {
			if err := s.objects.set(m, e.ip, s.seq); err != nil {
				s.rates.warn("mac object", "MAC entry not sent to ghk84 compat clients", "mac", m, "err", err)
			}
		}
	}
	return s.macs.setCounters(s.seq)
}

// do runs a request for the console and waits for its result.
func (s *Server) do(ctx context.Context, ev evRequest) Result {
	ch := make(chan Result, 1)
	ev.done = func(res Result) { ch <- res }
	select {
	case s.events <- ev:
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
}

// MACs returns the MAC table, each IP as read from the shared segment.
func (s *Server) MACs(ctx context.Context) ([]macValue, error) {
	ch := make(chan []macValue, 1)
	select {
	case s.events <- evMACs{func(v []macValue) { ch <- v }}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// View returns a read-only snapshot of the table and its sequence number.
func (s *Server) View(ctx context.Context) (*route.View, uint64, error) {
	type vs struct {
		v   *route.View
		seq uint64
	}
	ch := make(chan vs, 1)
	select {
	case s.events <- evView{func(v *route.View, seq uint64) { ch <- vs{v, seq} }}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.v, r.seq, nil
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}
