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
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/state"
	"github.com/rtm-project/rtm/internal/wire"
)

// Config configures a Server.
type Config struct {
	Socket  string         // Unix socket path
	Backlog int            // bytes queued for one client before it must resync; 0 means DefaultBacklog
	MaxLoad int            // routes in one load; 0 means DefaultMaxLoad
	SHM     string         // base name of the MAC segment; "" means shm.DefaultName(Socket)
	MACCap  int            // initial capacity of the MAC segment; 0 means DefaultMACCap
	Group   string         // a group (name or gid) whose members may connect and change the tables, besides root and rtmd's uid
	MQ      string         // the command queue's name, "/NAME"; "" means "/" + shm.DefaultName(Socket); MQOff for none
	Listen  string         // a TCP address for read-only subscribers; "" for none
	Compat  []CompatSocket // Unix sockets for classic fixed-record clients
	// State is the state directory (docs/state.md); "" keeps the tables in
	// memory only. StateRepair starts from the valid part of a damaged
	// journal.
	State       string
	StateRepair bool
	// ResumeWindow is how many bytes of changes rtmd keeps for
	// subscribers that resume; 0 means DefaultResumeWindow.
	ResumeWindow int
	// CompactMin is the journal size below which rtmd never writes a
	// snapshot; 0 means DefaultCompactMin.
	CompactMin int64
	Limits     Limits       // what peers can make rtmd hold; zero fields take the defaults
	Version    string       // reported to clients
	Log        *slog.Logger // nil means slog.Default()
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
	priors  []prior // with a state directory: what this turn's route changes replaced

	queue       *mq.Queue
	tcp         net.Listener
	compatLns   []*net.UnixListener   // one per Config.Compat
	objects     *macObjects           // with a ghk84 compat socket: the per-MAC objects; else nil
	hellos      sync.WaitGroup        // compat connections not yet handed to the loop
	compactions sync.WaitGroup        // the snapshot being written (compact.go)
	compacted   chan compaction       // its result, for the loop
	persist     *persist              // the state directory; nil without Config.State
	halt        error                 // set by the loop: rtmd must stop
	history     [wire.HistoryLen]byte // this run's id, told in Welcome
	runs        []state.Run           // the runs on the state directory before this one, newest first
	window      window                // published changes kept for subscribers that resume; owned by the loop
	published   uint64                // the sequence number of the last change published
	started     time.Time
	inputs      [nInputs]counter // owned by the loop

	// Bounds on what peers make rtmd hold (Config.Limits).
	unixConns, tcpConns, compatConns *connLimit
	staged                           atomic.Int64 // bytes of loads staged by readers, not yet applied
	rates                            *rateLog
	freeMemory                       chan struct{} // cap 1: freeMemorySoon was called

	nextID   atomic.Uint64 // connection ids, for logs
	groupID  int64         // -1 without Config.Group
	flushing bool          // a flush this turn: signal the registered clients after publishing
}

// pendingReply is a reply held until the turn's changes are stored: b
// for a connection, or done and res for the console. A change that could
// not be stored is undone, and its reply says so instead (mutated).
type pendingReply struct {
	c       *conn
	b       []byte
	id      uint32
	mutated bool // the request changed the tables
	done    func(Result)
	res     Result
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
	if cfg.CompactMin <= 0 {
		cfg.CompactMin = DefaultCompactMin
	}
	if cfg.ResumeWindow <= 0 {
		cfg.ResumeWindow = DefaultResumeWindow
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
		compacted:  make(chan compaction, 1),
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
	for _, cs := range cfg.Compat {
		ln, err := listen(cs.Path, fileGroup(gid), cfg.Log)
		if err != nil {
			return fail(fmt.Errorf("-compat-socket %s: %w", cs.Path, err))
		}
		s.compatLns = append(s.compatLns, ln)
		s.log.Info("compat listener for classic record clients", "socket", cs.Path, "layout", cs.Layout.Name, "record_bytes", cs.Layout.Size)
		if cs.Layout.HasMACs() && s.objects == nil {
			s.objects = newMACObjects(fileGroup(gid))
		}
	}
	if cfg.State != "" {
		p, rec, err := openPersist(cfg.State, cfg.StateRepair, cfg.ResumeWindow, cfg.CompactMin, s.log)
		if err != nil {
			return fail(err)
		}
		s.persist = p
		if s.history, s.runs, err = p.dir.NewRun(rec.seq); err != nil {
			return fail(err)
		}
		if err := s.restore(rec); err != nil {
			return fail(err)
		}
		s.window = rec.window
		s.log.Info("state read back", "dir", cfg.State, "seq", s.seq, "routes", s.table.Len(), "macs", len(s.macs.entries))
	}
	if s.persist == nil {
		rand.Read(s.history[:]) // a run of its own
		s.window.max = cfg.ResumeWindow
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
	for i, ln := range s.compatLns {
		ln.Close()
		os.Remove(s.cfg.Compat[i].Path)
	}
	if s.objects != nil {
		s.objects.close()
	}
	if s.queue != nil {
		s.queue.Close()
		mq.Unlink(s.queue.Name())
	}
	if s.macs != nil {
		s.macs.close()
	}
	if s.persist != nil {
		s.persist.close()
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
	wg.Go(func() { s.accept(s.ln, "unix", s.unixConns, nil) })
	if s.tcp != nil {
		wg.Go(func() { s.accept(s.tcp, "tcp", s.tcpConns, nil) })
	}
	for i, ln := range s.compatLns {
		wg.Go(func() { s.accept(ln, "compat", s.compatConns, s.cfg.Compat[i].Layout) })
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
	for _, ln := range s.compatLns {
		ln.Close()
	}
	if s.queue != nil {
		s.queue.Close()
	}
	wg.Wait()
	<-queueDone
	// A compat connection handed to the loop as it stopped is closed here;
	// hellos ends the handing.
	s.hellos.Wait()
	s.compactions.Wait() // its files are the directory's until it is unlocked
	for len(s.events) > 0 {
		if ev, ok := (<-s.events).(evCompat); ok {
			ev.c.close()
		}
	}
	s.closeClients()
	s.cleanup()
	if s.halt != nil {
		return s.halt
	}
	s.log.Info("rtmd stopped")
	return nil
}

// accept starts a connection for each peer the listener's limit admits;
// layout is a compat socket's, else nil. A refused peer is told why,
// briefly, and closed; the refusal is logged once per cause and interval,
// so a flood costs rtmd little.
func (s *Server) accept(ln net.Listener, transport string, lim *connLimit, layout *compat.Layout) {
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
		c := newConn(s, nc, transport, layout)
		if err := lim.acquire(c.peer, c.mayChange && c.input == inSocket); err != nil {
			s.rates.warn("connection limit", "connection refused", "transport", transport, "err", err)
			c.refuse(err)
			continue
		}
		c.limit = lim
		if c.input == inCompat {
			s.hellos.Add(1)
			go c.serveCompat()
			continue
		}
		go c.read()
		go c.write()
	}
}

// closeClients closes every connection as rtmd stops. Clients that speak
// the protocol are told why; ghk84 compat clients get a record with loop
// 0 from their writers, which are given a second to deliver it.
func (s *Server) closeClients() {
	var waiting []*conn
	for c := range s.clients {
		if c.input == inCompat && c.layout.HasMACs() {
			c.sayGoodbye()
			waiting = append(waiting, c)
			continue
		}
		c.shutdown("rtmd is shutting down")
	}
	deadline := time.After(time.Second)
	for _, c := range waiting {
		select {
		case <-c.done:
		case <-deadline:
		}
		c.close()
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
