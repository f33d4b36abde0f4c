package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// MAC is a MAC address, the key of the MAC table.
type MAC = mac.Addr

// ParseMAC parses six hex pairs separated by colons, in either case.
func ParseMAC(s string) (MAC, error) { return mac.Parse(s) }

// ServerError is an error that rtmd returned for a request, or sent before
// closing the connection. errors.Is matches it against ErrExists,
// ErrNotFound and ErrPermission by its status.
type ServerError struct {
	Msg    string
	Status byte // the reply's status code (docs/protocol.md)
}

func (e *ServerError) Error() string { return "rtmd: " + e.Msg }

// Is reports whether e is ErrExists, ErrNotFound or ErrPermission.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrExists:
		return e.Status == wire.StatusExists
	case ErrNotFound:
		return e.Status == wire.StatusNotFound
	case ErrPermission:
		return e.Status == wire.StatusPermission
	}
	return false
}

// Dialer connects to rtmd. The zero value is ready to use.
//
// On a Unix socket, Dial first asks the kernel which uid the process
// listening on it runs as (SO_PEERCRED, as that process was when it called
// listen), and sends nothing to a process that is neither root, nor this
// process's effective uid, nor listed in TrustUIDs: such a socket may have
// been planted by another user, who would see this client's requests and
// make up rtmd's replies. A TCP peer cannot be checked this way; connect
// over TCP only to an rtmd on a network you trust.
type Dialer struct {
	// Name identifies this client in rtmd's logs; the default is the
	// program's name.
	Name string
	// TrustUIDs lists the uids, besides root and this process's effective
	// uid, that the rtmd behind a Unix socket may run as. Dial refuses any
	// other with an *UntrustedPeerError.
	TrustUIDs []uint32
	// Timeout, if positive, bounds connecting and the handshake, as well
	// as ctx does.
	Timeout time.Duration
}

// UntrustedPeerError is the error of Dial when the process behind a Unix
// socket runs as a uid that the Dialer does not trust (see Dialer). Add UID
// to Dialer.TrustUIDs to trust it.
type UntrustedPeerError struct {
	Address string // the socket's path
	UID     uint32 // the uid the process listening on it runs as
	PID     int32  // that process's pid, as the kernel reported it
}

func (e *UntrustedPeerError) Error() string {
	return fmt.Sprintf("rtmd socket %s is served by uid %d (pid %d), not by root or uid %d: refused, as another user may have planted it; add %d to Dialer.TrustUIDs to trust it",
		e.Address, e.UID, e.PID, os.Geteuid(), e.UID)
}

// noPeerUID is Conn.peerUID when the peer's uid is not known (TCP).
const noPeerUID = ^uint32(0)

// Dial connects to rtmd on the Unix socket at path.
func Dial(ctx context.Context, path string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, "unix", path)
}

// Dial connects to rtmd and does the handshake. network is "unix" (or
// "tcp", for a read-only listener). On a Unix socket it first checks who
// serves it (see Dialer).
func (d *Dialer) Dial(ctx context.Context, network, address string) (*Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("dial rtmd: %w", err)
	}
	c := &Conn{nc: nc, r: wire.NewReader(nc), peerUID: noPeerUID}
	if uc, ok := nc.(*net.UnixConn); ok {
		if c.peerUID, err = d.checkPeer(uc, address); err != nil {
			nc.Close()
			return nil, err
		}
	}
	name := d.Name
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	err = c.withContext(ctx, func() error {
		if _, err := nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: wire.CleanName(name)})); err != nil {
			// rtmd may have refused the connection, saying why, and
			// closed it before the hello arrived.
			if typ, p, rerr := c.r.ReadFrame(); rerr == nil && typ == wire.TError {
				return serverError(wire.StatusError, p)
			}
			return err
		}
		typ, p, err := c.r.ReadFrame()
		if err != nil {
			return err
		}
		switch typ {
		case wire.TWelcome:
			var dec wire.Decoder
			dec.Reset(p)
			version := dec.U16("version")
			dec.U64("sequence")
			c.ServerVersion = dec.String("server version")
			c.History = dec.History("history")
			if err := dec.Finish(); err != nil {
				return fmt.Errorf("bad welcome: %w", err)
			}
			if version != wire.Version {
				return fmt.Errorf("rtmd speaks protocol version %d, this client %d", version, wire.Version)
			}
			return nil
		case wire.TError:
			return serverError(wire.StatusError, p)
		}
		return fmt.Errorf("protocol error: frame type %d before welcome", typ)
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rtmd handshake: %w", err)
	}
	return c, nil
}

// Conn is a connection to rtmd for requests. Its methods are safe for
// concurrent use; requests are sent one at a time.
type Conn struct {
	nc            net.Conn
	r             *wire.Reader
	ServerVersion string // rtmd's version, from the handshake
	// History is the id of rtmd's run, new each time rtmd starts. A
	// subscriber that resumes gives back the id it had with its sequence
	// number; rtmd knows which runs its state continues (docs/state.md).
	History [wire.HistoryLen]byte
	// peerUID is the uid rtmd runs as, checked at Dial (SO_PEERCRED), or
	// noPeerUID over TCP.
	peerUID uint32

	mu     sync.Mutex
	nextID uint32
	buf    []byte
	broken error // a request failed without rtmd's answer: the connection is closed
}

// Close says goodbye to rtmd and closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.nc.Write(wire.AppendRequest(nil, 0, wire.KGoodbye, nil))
	c.mu.Unlock()
	return c.nc.Close()
}

// Flush empties both of rtmd's tables; registered clients get SIGUSR1.
func (c *Conn) Flush(ctx context.Context) (seq uint64, err error) {
	_, body, err := c.simple(ctx, wire.KFlush, func(b []byte) []byte { return b })
	return seqReply(body, err)
}

// Status is rtmd's status.
type Status = wire.Status

// Status returns rtmd's version, uptime, sequence number, table sizes,
// clients per transport and per-input counters.
func (c *Conn) Status(ctx context.Context) (Status, error) {
	var st Status
	_, body, err := c.simple(ctx, wire.KStatus, func(b []byte) []byte { return b })
	if err != nil {
		return st, err
	}
	var d wire.Decoder
	d.Reset(body)
	text := d.Text("status")
	if err := d.Finish(); err != nil {
		return st, fmt.Errorf("bad status reply: %w", err)
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return st, fmt.Errorf("bad status reply: %w", err)
	}
	return st, nil
}

// ClientInfo describes a client connected to rtmd.
type ClientInfo = wire.ClientInfo

// Clients lists the clients connected to rtmd.
func (c *Conn) Clients(ctx context.Context) ([]ClientInfo, error) {
	_, body, err := c.simple(ctx, wire.KClients, func(b []byte) []byte { return b })
	if err != nil {
		return nil, err
	}
	var d wire.Decoder
	d.Reset(body)
	text := d.Text("clients")
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("bad clients reply: %w", err)
	}
	var list []ClientInfo
	if err := json.Unmarshal([]byte(text), &list); err != nil {
		return nil, fmt.Errorf("bad clients reply: %w", err)
	}
	return list, nil
}

// withContext runs f with the connection's deadline set from ctx, and makes
// a cancelled ctx interrupt it.
func (c *Conn) withContext(ctx context.Context, f func() error) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	err := f()
	if !stop() && ctx.Err() != nil {
		c.nc.SetDeadline(time.Time{})
		return ctx.Err()
	}
	return err
}

func serverError(status byte, p []byte) error {
	var d wire.Decoder
	d.Reset(p)
	msg := d.String("message")
	if err := d.Finish(); err != nil {
		return fmt.Errorf("bad error frame: %w", err)
	}
	return &ServerError{Msg: msg, Status: status}
}

// roundTrip sends the frames in c.buf (the last of which is request id) and
// returns the reply's status and body.
func (c *Conn) roundTrip(ctx context.Context, id uint32, send func() error) (status byte, body []byte, err error) {
	if c.broken != nil {
		return 0, nil, c.broken
	}
	defer func() {
		// Without rtmd's answer (a timeout, a cut, a bad frame) the
		// connection is out of step: a late reply would answer the next
		// request. It is closed, and later requests say why.
		if _, ok := errors.AsType[*ServerError](err); err != nil && !ok {
			c.broken = fmt.Errorf("connection to rtmd closed after an earlier request failed: %w", err)
			c.nc.Close()
		}
	}()
	err = c.withContext(ctx, func() error {
		if err := send(); err != nil {
			return err
		}
		for {
			typ, p, err := c.r.ReadFrame()
			if err != nil {
				return err
			}
			switch typ {
			case wire.TReply:
				if len(p) < 5 {
					return fmt.Errorf("protocol error: short reply (%d bytes)", len(p))
				}
				if got := binary.LittleEndian.Uint32(p); got != id {
					return fmt.Errorf("protocol error: reply to request %d, want %d", got, id)
				}
				status, body = p[4], p[5:]
				return nil
			case wire.TError:
				return serverError(wire.StatusError, p)
			default:
				return fmt.Errorf("protocol error: frame type %d on a request connection", typ)
			}
		}
	})
	if err == nil && status != wire.StatusOK {
		err = serverError(status, body)
	}
	return status, body, err
}

func (c *Conn) simple(ctx context.Context, kind byte, body func([]byte) []byte) (byte, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	id := c.nextID
	c.buf = body(c.buf[:0])
	frame := wire.AppendRequest(nil, id, kind, c.buf)
	return c.roundTrip(ctx, id, func() error {
		_, err := c.nc.Write(frame)
		return err
	})
}

// seqReply decodes the reply to a change: the sequence number rtmd was at
// after it.
func seqReply(body []byte, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	if len(body) != 8 {
		return 0, fmt.Errorf("protocol error: reply of %d bytes, want a sequence number", len(body))
	}
	return binary.LittleEndian.Uint64(body), nil
}

func (c *Conn) mutate(ctx context.Context, kind byte, r Route) (uint64, error) {
	ir, err := r.internal()
	if err != nil {
		return 0, err
	}
	_, body, err := c.simple(ctx, kind, func(b []byte) []byte { return wire.AppendRoute(b, ir) })
	return seqReply(body, err)
}

// Add adds a route; it fails with ErrExists if its table has a route for
// its prefix. Like every change, it returns the sequence number at which
// rtmd applied it (Mirror.WaitSeq waits for a mirror to reach it).
func (c *Conn) Add(ctx context.Context, r Route) (seq uint64, err error) {
	return c.mutate(ctx, wire.KAdd, r)
}

// Change changes a route; it fails with ErrNotFound if its table has no
// route for its prefix.
func (c *Conn) Change(ctx context.Context, r Route) (seq uint64, err error) {
	return c.mutate(ctx, wire.KChange, r)
}

// Replace adds or changes a route.
func (c *Conn) Replace(ctx context.Context, r Route) (seq uint64, err error) {
	return c.mutate(ctx, wire.KReplace, r)
}

// Delete deletes the route for exactly dst in table (0 means main); it
// fails with ErrNotFound if there is none.
func (c *Conn) Delete(ctx context.Context, table uint32, dst netip.Prefix) (seq uint64, err error) {
	return c.DeleteMatching(ctx, Selector{Table: table, Mode: Exact, Prefix: dst})
}

// DeleteMatching deletes the route for exactly s.Prefix in s.Table (0
// means main) if it has what else s names, as `ip route del PREFIX via G`
// does; it fails with ErrNotFound if there is no such route.
func (c *Conn) DeleteMatching(ctx context.Context, s Selector) (seq uint64, err error) {
	if s.Mode != Exact {
		return 0, errors.New("delete: want an exact prefix")
	}
	if s.Table == 0 {
		s.Table = TableMain
	}
	is, err := s.internal()
	if err != nil {
		return 0, err
	}
	_, body, err := c.simple(ctx, wire.KDel, func(b []byte) []byte { return wire.AppendSelector(b, is) })
	return seqReply(body, err)
}

// FlushRoutes deletes every route s picks (s.Table 0 means every table)
// and returns how many it deleted. MAC entries stay.
func (c *Conn) FlushRoutes(ctx context.Context, s Selector) (n int, seq uint64, err error) {
	is, err := s.internal()
	if err != nil {
		return 0, 0, err
	}
	_, body, err := c.simple(ctx, wire.KRouteFlush, func(b []byte) []byte { return wire.AppendSelector(b, is) })
	if err != nil {
		return 0, 0, err
	}
	return countReply(body)
}

// Get returns the route of table (0 means main) that a lookup of a
// chooses, the longest prefix containing a, or an error for which
// errors.Is(err, ErrNotFound) holds.
func (c *Conn) Get(ctx context.Context, table uint32, a netip.Addr) (Route, error) {
	a = a.Unmap()
	if !a.IsValid() {
		return Route{}, errors.New("get: invalid address")
	}
	_, body, err := c.simple(ctx, wire.KGet, func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, table)
		return wire.AppendAddr(b, a.WithZone(""))
	})
	if err != nil {
		return Route{}, err
	}
	var d wire.Decoder
	d.Reset(body)
	r := d.Route()
	if err := d.Finish(); err != nil {
		return Route{}, fmt.Errorf("bad get reply: %w", err)
	}
	return publicRoute(&r), nil
}

// Load replaces routes as one batch: rtmd applies all of them, in order, or,
// if one is bad, none; a later duplicate wins. It returns how many routes
// changed. For a big table, fill a Batch instead and call LoadBatch.
func (c *Conn) Load(ctx context.Context, routes []Route) (changed int, seq uint64, err error) {
	var b Batch
	for i, r := range routes {
		if err := b.Add(r); err != nil {
			return 0, 0, fmt.Errorf("route %d: %w", i+1, err)
		}
	}
	return c.LoadBatch(ctx, &b)
}

func checkMACIP(ip netip.Addr) error {
	if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
		return &route.FieldError{Field: "ip", Value: ip.String(), Msg: "want an IPv4 or IPv6 address without zone, not IPv4-mapped"}
	}
	return nil
}

func checkMACEntry(e MACEntry) error {
	if err := checkMACIP(e.IP); err != nil {
		return err
	}
	if e.Dev != "" {
		return route.CheckDev(e.Dev)
	}
	return nil
}

func (c *Conn) setMAC(ctx context.Context, kind byte, e MACEntry) (uint64, error) {
	if err := checkMACEntry(e); err != nil {
		return 0, err
	}
	_, body, err := c.simple(ctx, kind, func(b []byte) []byte { return appendMACEntry(b, e) })
	return seqReply(body, err)
}

func appendMACEntry(b []byte, e MACEntry) []byte {
	b = wire.AppendAddr(append(b, e.MAC[:]...), e.IP)
	return wire.AppendDev(b, e.Dev)
}

// AddMAC adds a MAC entry; it fails with ErrExists if the MAC has one.
func (c *Conn) AddMAC(ctx context.Context, e MACEntry) (seq uint64, err error) {
	return c.setMAC(ctx, wire.KMACAdd, e)
}

// ChangeMAC changes a MAC entry; it fails with ErrNotFound if the MAC has
// none.
func (c *Conn) ChangeMAC(ctx context.Context, e MACEntry) (seq uint64, err error) {
	return c.setMAC(ctx, wire.KMACChange, e)
}

// ReplaceMAC adds or changes a MAC entry.
func (c *Conn) ReplaceMAC(ctx context.Context, e MACEntry) (seq uint64, err error) {
	return c.setMAC(ctx, wire.KMACReplace, e)
}

// DeleteMAC deletes a MAC entry; it fails with ErrNotFound if there is
// none.
func (c *Conn) DeleteMAC(ctx context.Context, m MAC) (seq uint64, err error) {
	_, body, err := c.simple(ctx, wire.KMACDel, func(b []byte) []byte { return append(b, m[:]...) })
	return seqReply(body, err)
}

// LoadMACs replaces many MAC entries as one batch, in order; it returns how
// many changed.
func (c *Conn) LoadMACs(ctx context.Context, entries []MACEntry) (changed int, seq uint64, err error) {
	for i, e := range entries {
		if err := checkMACEntry(e); err != nil {
			return 0, 0, fmt.Errorf("entry %d: %w", i+1, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	id := c.nextID
	_, body, err := c.roundTrip(ctx, id, func() error {
		var b []byte
		for len(entries) > 0 {
			n := min(len(entries), 2000)
			flags := byte(0)
			if n == len(entries) {
				flags = wire.LoadFinal
			}
			var off int
			b, off = wire.BeginFrame(b[:0], wire.TRequest)
			b = binary.LittleEndian.AppendUint32(b, id)
			b = append(b, wire.KMACLoad, flags)
			b = binary.LittleEndian.AppendUint32(b, uint32(n))
			for _, e := range entries[:n] {
				b = appendMACEntry(b, e)
			}
			if _, err := c.nc.Write(wire.EndFrame(b, off)); err != nil {
				return err
			}
			entries = entries[n:]
			if flags == wire.LoadFinal {
				return nil
			}
		}
		_, err := c.nc.Write(wire.AppendRequest(nil, id, wire.KMACLoad, []byte{wire.LoadFinal, 0, 0, 0, 0}))
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return countReply(body)
}
