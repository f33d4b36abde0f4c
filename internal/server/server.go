// Package server is rtmd: the event loop that owns the tables, and the
// listeners and connections that feed it.
//
// One goroutine, the loop, owns the routing table and the sequence number.
// Every source (each connection's reader, the console) sends it events over
// one channel and never touches the table. The loop applies a turn's worth of
// events, encodes the changes once, and appends the same bytes to every
// subscriber's queue; each connection has a writer goroutine that drains its
// queue, so a slow reader stalls only itself. A queue past its byte cap is
// dropped and the client is resent a snapshot instead: memory stays bounded
// and nothing is lost silently.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// Config configures a Server.
type Config struct {
	Socket  string       // Unix socket path
	Backlog int          // bytes queued for one client before it must resync; 0 means DefaultBacklog
	MaxLoad int          // routes in one load; 0 means DefaultMaxLoad
	SHM     string       // base name of the MAC segment; "" means shm.DefaultName(Socket)
	MACCap  int          // initial capacity of the MAC segment; 0 means DefaultMACCap
	Group   string       // a group (name or gid) whose members may connect and change the tables, besides root and rtmd's uid
	MQ      string       // the command queue's name, "/NAME"; "" means "/" + shm.DefaultName(Socket); MQOff for none
	Listen  string       // a TCP address for read-only subscribers; "" for none
	Compat  string       // a Unix socket path for classic fixed-record clients; "" for none
	Limits  Limits       // what peers can make rtmd hold; zero fields take the defaults
	Version string       // reported to clients
	Log     *slog.Logger // nil means slog.Default()
}

// Version is rtmd's version.
const Version = "0.1.0"

// Defaults for Config.
const (
	DefaultBacklog = 64 << 20
	DefaultMaxLoad = wire.DefaultMaxLoad
	DefaultMACCap  = 4096
)

// Server is rtmd.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ln     *net.UnixListener
	events chan event
	// stopping is closed when the loop has stopped, for the sources that
	// might still try to send it something.
	stopping chan struct{}

	// Owned by the loop.
	table   route.Table
	macs    *macTable
	seq     uint64
	clients map[*conn]struct{}
	changes wire.ChangeWriter
	replies []pendingReply

	queue    *mq.Queue
	tcp      net.Listener
	compatLn *net.UnixListener
	started  time.Time
	inputs   [nInputs]counter // owned by the loop

	// Bounds on what peers make rtmd hold (Config.Limits).
	unixConns, tcpConns, compatConns *connLimit
	staged                           atomic.Int64 // bytes of loads staged by readers, not yet applied
	rates                            *rateLog
	freeMemory                       chan struct{} // cap 1: freeMemorySoon was called

	nextID   atomic.Uint64 // connection ids, for logs
	groupID  int64         // -1 without Config.Group
	flushing bool          // a flush this turn: signal the registered clients after publishing
}

type pendingReply struct {
	c *conn
	b []byte
}

// New checks the socket path and listens on it. A socket file that no
// process answers on is stale and replaced; one that answers is an error.
func New(cfg Config) (*Server, error) {
	if cfg.Backlog <= 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.MaxLoad <= 0 {
		cfg.MaxLoad = DefaultMaxLoad
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SHM == "" {
		cfg.SHM = shm.DefaultName(cfg.Socket)
	}
	if cfg.MACCap <= 0 {
		cfg.MACCap = DefaultMACCap
	}
	cfg.Limits.setDefaults()
	gid, err := lookupGroup(cfg.Group)
	if err != nil {
		return nil, err
	}
	ln, err := listen(cfg.Socket, fileGroup(gid), cfg.Log)
	if err != nil {
		return nil, err
	}
	// The socket is ours, so objects of this name are a dead rtmd's.
	if stale, foreign, err := shm.RemoveStale(cfg.SHM); err != nil {
		ln.Close()
		os.Remove(cfg.Socket)
		return nil, err
	} else {
		if len(stale) > 0 {
			cfg.Log.Info("removed stale shared memory objects", "names", stale)
		}
		if len(foreign) > 0 {
			cfg.Log.Warn("shared memory objects of this name that rtmd did not make; left alone, never used", "objects", foreign)
		}
	}
	if cfg.MQ == "" {
		cfg.MQ = "/" + shm.DefaultName(cfg.Socket)
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Log,
		ln:         ln,
		groupID:    gid,
		started:    time.Now(),
		events:     make(chan event, 1024),
		stopping:   make(chan struct{}),
		clients:    make(map[*conn]struct{}),
		rates:      newRateLog(cfg.Log),
		freeMemory: make(chan struct{}, 1),
	}
	lim := cfg.Limits
	s.unixConns = newConnLimit(lim.Conns, lim.ConnsPerUID, "-max-conns", "-max-conns-per-uid")
	s.tcpConns = newConnLimit(lim.TCPConns, lim.TCPConnsPerAddr, "-max-tcp-conns", "-max-tcp-conns-per-addr")
	s.compatConns = newConnLimit(lim.CompatConns, lim.CompatConns, "-max-compat-conns", "-max-compat-conns")
	fail := func(err error) (*Server, error) {
		s.cleanup()
		return nil, err
	}
	if s.macs, err = newMACTable(cfg.SHM, cfg.MACCap, int(gid)); err != nil {
		return fail(err)
	}
	s.macs.moved = s.macSegMoved
	if s.queue, err = s.openQueue(); err != nil {
		return fail(err)
	}
	if cfg.Compat != "" {
		if s.compatLn, err = listen(cfg.Compat, fileGroup(gid), cfg.Log); err != nil {
			return fail(fmt.Errorf("-compat-socket: %w", err))
		}
		s.log.Info("compat listener for classic 72-byte record clients", "socket", cfg.Compat)
	}
	if cfg.Listen != "" {
		if s.tcp, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fail(err)
		}
		s.log.Warn("TCP listener for read-only subscribers: no encryption, no authentication; keep it on loopback or a trusted network", "addr", s.tcp.Addr())
	}
	return s, nil
}

// cleanup closes and removes what New made: the socket files, the queue,
// the shared memory objects.
func (s *Server) cleanup() {
	s.ln.Close()
	os.Remove(s.cfg.Socket)
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.compatLn != nil {
		s.compatLn.Close()
		os.Remove(s.cfg.Compat)
	}
	if s.queue != nil {
		s.queue.Close()
		mq.Unlink(s.queue.Name())
	}
	if s.macs != nil {
		s.macs.close()
	}
}

// listen listens on a Unix socket at path, mode 0660, of rtmd's uid and
// group gid (bindUnix), replacing a stale socket file there. Closing the
// listener leaves the file; cleanup removes it.
func listen(path string, gid int, log *slog.Logger) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another rtmd is already serving %s", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("checking %s: %w", path, err)
		}
		log.Info("replacing stale socket", "path", path)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	return bindUnix(path, gid)
}

// Addr returns the socket path.
func (s *Server) Addr() string { return s.cfg.Socket }

// Run serves until ctx is done, then tells clients, closes every connection
// and removes the socket file.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("rtmd listening", "socket", s.cfg.Socket, "version", s.cfg.Version, "protocol", wire.Version, "shm", s.macs.seg.Name)
	var wg sync.WaitGroup
	wg.Go(func() { s.accept(s.ln, "unix", s.unixConns) })
	if s.tcp != nil {
		wg.Go(func() { s.accept(s.tcp, "tcp", s.tcpConns) })
	}
	if s.compatLn != nil {
		wg.Go(func() { s.accept(s.compatLn, "compat", s.compatConns) })
	}
	go s.returnMemory()
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		s.readQueue(s.queue)
	}()
	s.loop(ctx)
	close(s.stopping)
	s.ln.Close()
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.compatLn != nil {
		s.compatLn.Close()
	}
	if s.queue != nil {
		s.queue.Close()
	}
	wg.Wait()
	<-queueDone
	for c := range s.clients {
		c.shutdown("rtmd is shutting down")
	}
	s.cleanup()
	s.log.Info("rtmd stopped")
	return nil
}

// accept starts a connection for each peer the listener's limit admits.
// A refused peer is told why, briefly, and closed; the refusal is logged
// once per cause and interval, so a flood costs rtmd little.
func (s *Server) accept(ln net.Listener, transport string, lim *connLimit) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.rates.warn("accept", "accept failed; retrying in 100ms", "transport", transport, "err", err)
			time.Sleep(100 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		c := newConn(s, nc, transport)
		if err := lim.acquire(c.peer); err != nil {
			s.rates.warn("connection limit", "connection refused", "transport", transport, "err", err)
			c.refuse(err)
			continue
		}
		c.limit = lim
		if transport == "compat" {
			go c.readCompat()
			go c.write()
			select {
			case s.events <- evCompat{c}:
			case <-s.stopping:
				c.close()
			}
			continue
		}
		go c.read()
		go c.write()
	}
}

// event is what sources send the loop.
type event interface{}

type (
	evHello struct{ c *conn } // a client completed the handshake
	evGone  struct {
		c   *conn
		err error
	}
	evRequest struct {
		c      *conn // nil from the console
		id     uint32
		kind   byte
		route  route.Route
		addr   netip.Addr
		load   *loadBatch   // load: checked and staged by the reader
		staged int64        // bytes of Server.staged that load or macs hold; the loop releases them
		mac    mac.Addr     // the MAC requests
		ip     netip.Addr   // MAC add, change, replace
		pid    int32        // register
		line   int          // queue: the line of the message
		macs   []macValue   // MAC load
		err    error        // the reader found the request bad; the loop replies with it
		done   func(Result) // console: called on the loop; must not block
	}
	evResync struct{ c *conn } // the writer is idle and the client needs a new snapshot
	evView   struct{ done func(*route.View, uint64) }
	evMACs   struct{ done func([]macValue) }
)

// Result is the outcome of a request from the console.
type Result struct {
	Err      error
	NotFound bool
	Route    route.Route
	Changes  int    // routes changed by a load
	Text     string // the clients, as JSON
	MACSeg   wire.MACSeg
}

func (s *Server) loop(ctx context.Context) {
	for {
		select {
		case ev := <-s.events:
			s.handle(ev)
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
	}
}

func (s *Server) handle(ev event) {
	switch ev := ev.(type) {
	case evHello:
		s.clients[ev.c] = struct{}{}
		ev.c.enqueue(wire.AppendWelcome(nil, s.seq, s.cfg.Version))
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
	if res.Err != nil {
		s.inputs[in].rejected++
	} else {
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
		res.Text = s.clientsJSON()
	case wire.KStatus:
		res.Text = s.statusJSON(r.c != nil && r.c.input == inTCP)
	case wire.KAdd, wire.KChange, wire.KReplace:
		res.Err = s.set(r.kind, r.route)
	case wire.KDel:
		res.Err = s.del(r.route.Dst)
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
		res.Err = s.setMAC(r.kind, r.mac, r.ip)
	case wire.KMACDel:
		had, err := s.macs.del(r.mac)
		if err != nil {
			res.Err = err
			break
		}
		if !had {
			res.Err = fmt.Errorf("no entry for mac %v", r.mac)
			break
		}
		s.seq++
		s.changes.AddMAC(s.seq, wire.OpMACDel, r.mac, 0)
	case wire.KMACLoad:
		// Room for every new key first, so that a failure to grow leaves
		// the table as it was.
		if res.Err = s.macs.reserveFor(r.macs); res.Err != nil {
			s.log.Error("MAC load refused", "entries", len(r.macs), "err", res.Err)
			break
		}
		for _, kv := range r.macs {
			if res.Err = s.setMAC(wire.KMACReplace, kv.mac, kv.ip); res.Err != nil {
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
		res.Route, res.NotFound = s.table.Lookup(r.addr)
		res.NotFound = !res.NotFound
	case wire.KSubscribe:
		if r.c == nil || r.c.subscribed {
			res.Err = errors.New("already subscribed")
			break
		}
		s.snapshot(r.c, wire.ReasonNew)
	default:
		res.Err = fmt.Errorf("unknown request kind %d", r.kind)
	}
}

func (s *Server) reply(r evRequest, res Result) {
	if r.done != nil {
		r.done(res)
		return
	}
	var b []byte
	switch {
	case res.Err != nil:
		b = wire.AppendErrorReply(nil, r.id, res.Err.Error())
	case r.kind == wire.KGet && res.NotFound:
		b = wire.AppendReply(nil, r.id, wire.StatusNotFound, nil)
	case r.kind == wire.KGet:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendRoute(nil, res.Route))
	case r.kind == wire.KClients || r.kind == wire.KStatus:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendString(nil, res.Text))
	case r.kind == wire.KLoad || r.kind == wire.KMACLoad:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendString(nil, fmt.Sprint(res.Changes)))
	case r.kind == wire.KMACSeg:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, wire.AppendMACSegBody(nil, res.MACSeg))
	default:
		b = wire.AppendReply(nil, r.id, wire.StatusOK, nil)
	}
	s.replies = append(s.replies, pendingReply{r.c, b})
}

func (s *Server) set(kind byte, r route.Route) error {
	old, had := s.table.Get(r.Dst)
	switch {
	case kind == wire.KAdd && had:
		return fmt.Errorf("route %v exists (via %v dev %s)", r.Dst, old.Gateway, old.Dev)
	case kind == wire.KChange && !had:
		return fmt.Errorf("no route for %v", r.Dst)
	case had && old == r.NextHop:
		return nil // nothing changes, so no sequence number is used
	}
	s.table.Set(r.Dst, r.NextHop)
	op := byte(wire.OpAdd)
	if had {
		op = wire.OpChange
	}
	s.seq++
	s.changes.Add(s.seq, op, r)
	return nil
}

func (s *Server) del(p netip.Prefix) error {
	if _, had := s.table.Delete(p); !had {
		return fmt.Errorf("no route for %v", p)
	}
	s.seq++
	s.changes.Add(s.seq, wire.OpDel, route.Route{Dst: p})
	return nil
}

// setMAC applies a MAC add, change or replace: the record first, then the
// change that names it (and, if the segment grew, the new segment before
// that).
func (s *Server) setMAC(kind byte, m mac.Addr, ip netip.Addr) error {
	e, had := s.macs.entries[m]
	switch {
	case kind == wire.KMACAdd && had:
		return fmt.Errorf("mac %v exists (ip %v)", m, e.ip)
	case kind == wire.KMACChange && !had:
		return fmt.Errorf("no entry for mac %v", m)
	}
	e, had, changed, err := s.macs.set(m, ip)
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
	s.changes.AddMAC(s.seq, op, m, e.slot)
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
func (s *Server) publish() {
	if s.changes.Len() > 0 {
		if err := s.macs.setCounters(s.seq); err != nil {
			s.log.Error("MAC table", "err", err)
		}
		bufs := s.changes.Take()
		for c := range s.clients {
			if c.subscribed {
				c.enqueueChanges(bufs, s.seq)
			}
		}
	}
	for _, r := range s.replies {
		r.c.enqueue(r.b)
	}
	clear(s.replies)
	s.replies = s.replies[:0]
	if s.flushing {
		s.flushing = false
		s.signalFlush()
	}
}

// freeMemorySoon asks for freed memory to be returned to the OS, off the
// loop: after a big load, or after dropping a client that held a snapshot's
// view of an older table. Requests made while one is under way or within a
// second after it are served together, once, after that second.
func (s *Server) freeMemorySoon() {
	select {
	case s.freeMemory <- struct{}{}:
	default:
	}
}

// returnMemory serves freeMemorySoon until rtmd stops. It waits a moment
// before collecting, so that the loop has let go of what the request was
// about (a load's staged batch is live until its turn ends).
func (s *Server) returnMemory() {
	for {
		select {
		case <-s.freeMemory:
		case <-s.stopping:
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.stopping:
			return
		}
		debug.FreeOSMemory()
		select {
		case <-time.After(time.Second):
		case <-s.stopping:
			return
		}
	}
}

// Exec runs a request for the console and waits for its result.
func (s *Server) Exec(ctx context.Context, kind byte, r route.Route, addr netip.Addr) Result {
	ch := make(chan Result, 1)
	ev := evRequest{kind: kind, route: r, addr: addr, done: func(res Result) { ch <- res }}
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
