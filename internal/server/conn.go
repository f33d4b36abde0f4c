package server

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// helloTimeout is how long a new connection may take to say Hello.
const helloTimeout = 10 * time.Second

// conn is one client connection: a reader goroutine that decodes requests
// and sends them to the loop, and a writer goroutine that drains the queue
// the loop fills.
type conn struct {
	s         *Server
	nc        net.Conn
	input     input // inSocket or inTCP
	id        uint64
	cred      unix.Ucred // from SO_PEERCRED at connect
	mayChange bool       // the peer may change the tables (root, rtmd's uid, -group)
	peer      string     // "uid N" or the TCP peer's IP address: the key of its connection limit
	limit     *connLimit // the slot this connection holds; nil if it was refused
	since     time.Time
	name      string // from the Hello; set before the loop hears of the client

	// A compat client's record layout; and, for ghk84, the pidfd its writer
	// signals on a flush (-1 for none), set before the writer starts.
	layout    *compat.Layout
	sigfd     int
	signalled bool // sigfd was set: for `rtm clients`

	delivered atomic.Uint64 // the last sequence number written to the client
	// deletedAt (ghk84): the last item written with a MAC DELETE in it
	// (or a flush signal): the client may read the objects of the MACs
	// it names until it has read it. Stored before delivered.
	deletedAt atomic.Uint64
	acked     atomic.Uint64 // the last the client said it applied

	// Owned by the loop.
	subscribed bool
	resyncs    int
	pidfd      int // from pidfd_open at registration; -1 when not registered
	regPid     int32
	readAll    uint64 // ghk84: the client has read everything written through this sequence number

	mu          sync.Mutex
	queue       []item
	queued      int  // bytes in queue
	resync      bool // the queue overflowed: changes are dropped until a new snapshot is queued
	resyncAsked bool // the writer has asked the loop for that snapshot
	closed      bool
	// Backpressure on a peer's requests (waitRoom): its requests the loop
	// has not answered, and the bytes of replies queued or being written.
	pending    int
	replyBytes int

	wake      chan struct{} // cap 1: the queue is not empty
	room      chan struct{} // cap 1: pending or replyBytes went down
	done      chan struct{} // closed by close
	closeOnce sync.Once
}

// item is one thing to send: encoded frames, or a snapshot to encode.
type item struct {
	b      []byte   // a reply or notice
	bufs   [][]byte // changes, shared with other clients; dropped on overflow
	size   int      // bytes in b or bufs
	view   *route.View
	macs   *macView
	seq    uint64 // of a snapshot; of the last change in bufs
	reason byte
	// goodbye: rtmd is going away; a ghk84 client is told so, and the
	// writer closes the connection.
	goodbye bool
}

func newConn(s *Server, nc net.Conn, transport string, layout *compat.Layout) *conn {
	c := &conn{s: s, nc: nc, input: inSocket, id: s.nextID.Add(1), since: time.Now(), pidfd: -1, sigfd: -1, layout: layout,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{})}
	c.cred.Pid, c.cred.Uid, c.cred.Gid = -1, ^uint32(0), ^uint32(0)
	switch transport {
	case "tcp":
		c.input = inTCP
		if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
			c.peer = ap.Addr().Unmap().String()
		}
		return c
	case "compat":
		c.input = inCompat
		c.name = "compat client (" + layout.Name + ")"
	}
	var groups []uint32
	if raw, err := nc.(*net.UnixConn).SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				c.cred = *cred
			}
			groups = peerGroups(int(fd))
		})
	}
	c.peer = fmt.Sprintf("uid %d", c.cred.Uid)
	c.mayChange = s.mayWrite(c.cred, groups)
	return c
}

// refuse tells a peer that was not admitted why, if it speaks the
// protocol, and closes the connection. It must not block the accept loop:
// the write has a short deadline (a new connection's buffer is empty).
func (c *conn) refuse(err error) {
	c.nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	switch {
	case c.input != inCompat:
		c.nc.Write(wire.AppendError(nil, "rtmd refused the connection: "+err.Error()))
	case c.layout.HasMACs():
		c.nc.Write(c.layout.Append(nil, &compat.Record{Op: compat.None})) // loop 0
	}
	c.nc.Close()
}

// peerGroups returns the supplementary groups of the socket's peer at
// connect time (SO_PEERGROUPS), or nil.
func peerGroups(fd int) []uint32 {
	buf := make([]uint32, 64)
	n := uint32(len(buf) * 4)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return nil
	}
	return buf[:n/4]
}

func (c *conn) String() string {
	if c.input == inTCP {
		return fmt.Sprintf("#%d %q tcp %v", c.id, c.name, c.nc.RemoteAddr())
	}
	return fmt.Sprintf("#%d %q pid %d uid %d", c.id, c.name, c.cred.Pid, c.cred.Uid)
}

// enqueue queues encoded frames. Called by the loop.
func (c *conn) enqueue(b []byte) {
	c.countReply(len(b))
	c.push(item{b: b, size: len(b)})
}

// countReply counts n more bytes of replies that the peer has not read;
// the writer takes them off once written.
func (c *conn) countReply(n int) {
	c.mu.Lock()
	c.replyBytes += n
	c.mu.Unlock()
}

// unreadReplies returns the bytes of replies made for the peer and not
// yet written to it.
func (c *conn) unreadReplies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replyBytes
}

func (c *conn) push(it item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if it.bufs != nil {
		if c.resync {
			return
		}
		// One batch may exceed the cap on its own: resending the table
		// would cost more than the batch.
		if c.queued > 0 && c.queued+it.size > c.s.cfg.Backlog {
			c.overflow()
			return
		}
	}
	c.queue = append(c.queue, it)
	c.queued += it.size
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Backpressure: a peer may have at most maxPending requests that the loop
// has not answered, and replyRoom bytes of replies that it has not read,
// before its reader stops reading its requests. A peer that sends and never
// reads so stalls only itself, holding little, until the write deadline
// drops it.
const (
	maxPending = 64
	replyRoom  = 256 << 10
)

// waitRoom waits until the peer may send another request, and counts it
// as pending. It returns false if the connection closed meanwhile.
func (c *conn) waitRoom() bool {
	for {
		c.mu.Lock()
		ok := c.pending < maxPending && c.replyBytes <= replyRoom
		if ok {
			c.pending++
		}
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.room:
		case <-c.done:
			return false
		}
	}
}

// answered records that the loop has answered a request (or found it
// needs no answer), or that the writer has written n bytes of replies.
func (c *conn) answered(requests, n int) {
	c.mu.Lock()
	c.pending -= requests
	c.replyBytes -= n
	c.mu.Unlock()
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// overflow drops the queued changes; the writer asks for a new snapshot when
// it has sent what it holds. Called with mu held.
func (c *conn) overflow() {
	c.s.rates.warn("backlog", "client backlog over its cap; it will be resent the table", "client", c, "backlog_bytes", c.queued, "cap", c.s.cfg.Backlog)
	c.resync = true
	kept := c.queue[:0]
	c.queued = 0
	for _, it := range c.queue {
		if it.bufs == nil && it.view == nil {
			kept = append(kept, it)
			c.queued += it.size
		}
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sayGoodbye asks the writer of a compat client to tell it that rtmd is
// going away, and to close the connection.
func (c *conn) sayGoodbye() {
	c.mu.Lock()
	c.queue = append(c.queue, item{goodbye: true})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// enqueueSnapshot queues a snapshot; changes queued after it follow it.
// Called by the loop.
func (c *conn) enqueueSnapshot(v *route.View, macs *macView, seq uint64, reason byte) {
	c.mu.Lock()
	c.resync, c.resyncAsked = false, false
	c.mu.Unlock()
	c.push(item{view: v, macs: macs, seq: seq, reason: reason})
}

// enqueueChanges queues buffers of Changes frames shared with other
// clients; seq is the last change in them.
func (c *conn) enqueueChanges(bufs [][]byte, seq uint64) {
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	c.push(item{bufs: bufs, size: size, seq: seq})
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.queue = nil
		c.mu.Unlock()
		close(c.done)
		c.nc.Close()
		if c.limit != nil {
			c.limit.release(c.peer)
		}
	})
}

// shutdown tells the client why it is being dropped, briefly, and closes.
// A compat client has no frame for it: it sees the connection end, after
// a record with loop 0 if it is ghk84 (sayGoodbye).
func (c *conn) shutdown(msg string) {
	if c.input == inCompat {
		c.close()
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write(wire.AppendError(nil, msg))
	c.close()
}

// fatal reports a protocol error to the client and to the log, and drops
// the client.
func (c *conn) fatal(err error) {
	c.s.rates.warn("protocol error", "dropping client", "client", c, "err", err)
	c.shutdown(err.Error())
	c.gone(err)
}

// gone tells the loop that the connection ended, so that it drops the
// client. Callers may have closed the connection already (a goodbye, a
// failed write, a protocol error): the loop must hear of it all the same,
// or the client stays listed. Only a loop that has stopped is not told.
func (c *conn) gone(err error) {
	select {
	case c.s.events <- evGone{c, err}:
	case <-c.s.stopping:
	}
}
