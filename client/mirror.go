package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// EventKind says what an Event is.
type EventKind int

// The kinds of events, in the order a subscription sees them: Reset, the
// table as Adds, Synced, then Adds, Changes and Dels as they happen. A
// Reset can come again later (see Event.Backlog); the table that follows it
// replaces the one before.
const (
	Reset EventKind = iota + 1
	Add
	Change
	Del
	Synced
	Flush // both tables were emptied
)

var kindNames = [...]string{Reset: "reset", Add: "add", Change: "change", Del: "del", Synced: "synced", Flush: "flush"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Object says what an Event is about: a route or a MAC entry.
type Object int

// The objects.
const (
	Routes Object = iota
	MACs
)

// Event is one step of a subscription.
type Event struct {
	Kind   EventKind
	Object Object // for Add, Change, Del
	// Seq is the change's sequence number; for Reset, the Adds of a
	// snapshot and Synced, the sequence number the snapshot is consistent
	// at.
	Seq   uint64
	Route Route // Table and Dst only for Del; zero for Reset and Synced
	// MAC is the key of a MACs event; IP is the MAC's IP as of this
	// change (an Add or Change).
	MAC MAC
	IP  netip.Addr
	Dev string // the MAC's interface, or ""
	// Backlog is set on a Reset sent because this client fell too far
	// behind; the snapshot that follows replaces its table.
	Backlog bool
	// History is set on a Reset because rtmd's state does not continue
	// the table the mirror held (its state was lost or restored from an
	// older copy, or it keeps none): the table that follows replaces this
	// one, which may hold what rtmd no longer has. A mirror with NoResume
	// does not ask, so is not told.
	History bool
	// Resumed is set on a Synced that ends a reconnection in which rtmd
	// sent only the changes the mirror had missed.
	Resumed bool
	// More reports that more events of the same frame follow at once; a
	// printer can flush its output when More is false.
	More bool
}

// Mirror keeps a local copy of rtmd's routing table: it subscribes, applies
// the snapshot and then every change, and reconnects and resyncs when the
// connection fails. Lookups read the local copy and never ask rtmd.
//
// Set the fields, then call Run; the other methods are safe for concurrent
// use with Run and each other. A new snapshot is built aside and swapped in
// whole when it is complete, so readers see either the old table or the new
// one, never a half-filled one.
type Mirror struct {
	Network string // "unix" (the default) or "tcp"
	Address string // socket path, or host:port for tcp
	Dialer  Dialer
	// OnEvent, if set, is called for every event, in order, from Run's
	// goroutine, after the event is applied to the mirror.
	// NoResume makes every reconnection take the whole table, as before
	// rtmd could resume a subscriber.
	NoResume bool
	OnEvent  func(Event)
	// OnError, if set, is called with each error that ends a connection,
	// before Run reconnects.
	OnError func(error)
	// NoReconnect makes Run return the first error instead of
	// reconnecting.
	NoReconnect bool
	// Register makes the mirror register this process with rtmd after each
	// sync, so that a flush reaches it as SIGUSR1 too (the library installs
	// the handler first). A signal that arrives before the stream's flush
	// empties the mirror at once, at the flush's sequence number; one that
	// arrives after changes nothing.
	Register bool
	// OnFlushSignal, if set, is called after each SIGUSR1 the mirror
	// handles, with whether it emptied the mirror.
	OnFlushSignal func(emptied bool)

	mu      sync.RWMutex
	table   *route.Table
	macDevs map[mac.Addr]string      // the MACs that have an interface
	macs    atomic.Pointer[macIndex] // MAC -> slot in seg; read without the lock
	seg     atomic.Pointer[segRef]
	seq     uint64
	history [wire.HistoryLen]byte // of the rtmd the table came from
	synced  bool
	resyncs int
	changed chan struct{} // closed and replaced when seq advances
	events  []Event       // reused by applyChanges
	jump    uint64        // a flush applied on its signal, before the stream brought it
	signals int
}

func (m *Mirror) init() {
	if m.changed == nil {
		m.changed = make(chan struct{})
		m.table = new(route.Table)
		m.macs.Store(newMACIndex(0))
	}
}

// Lookup returns the route of the main table that a lookup of a chooses:
// the local route with the longest prefix containing a (for ECMP, with all
// its next hops).
func (m *Mirror) Lookup(a netip.Addr) (Route, bool) { return m.LookupIn(TableMain, a) }

// LookupIn is Lookup in table n.
func (m *Mirror) LookupIn(n uint32, a netip.Addr) (Route, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.table == nil {
		return Route{}, false
	}
	r, ok := m.table.Lookup(n, a)
	if !ok {
		return Route{}, false
	}
	return publicRoute(&r), true
}

// Routes returns the local tables in `rtm route show table all` order: by
// table number, then IPv4 before IPv6, then by prefix.
func (m *Mirror) Routes() []Route {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.table == nil {
		return nil
	}
	routes := make([]Route, 0, m.table.Len())
	for r := range m.table.All() {
		routes = append(routes, publicRoute(&r))
	}
	return routes
}

// Len returns the number of local routes.
func (m *Mirror) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.table == nil {
		return 0
	}
	return m.table.Len()
}

// Seq returns the sequence number the local table is at, and whether it
// has synced at least once.
func (m *Mirror) Seq() (uint64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.seq, m.synced
}

// Resyncs returns how many snapshots replaced the table after the first.
func (m *Mirror) Resyncs() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.resyncs
}

// WaitSeq waits until the local table has synced and reached sequence seq.
func (m *Mirror) WaitSeq(ctx context.Context, seq uint64) error {
	for {
		m.mu.Lock()
		m.init()
		ok := m.synced && m.seq >= seq
		ch := m.changed
		m.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LookupMAC returns the IP of MAC k, read from the shared segment: no
// system call, no allocation, never torn, and never blocking rtmd. A MAC
// whose record no longer holds it (rtmd deleted it, and the delete is on
// its way in the stream) is not found. So is every MAC while the segment is
// truncated under the mirror: the mirror then resyncs, and finds values
// again once rtmd has moved the table to a new segment.
func (m *Mirror) LookupMAC(k MAC) (netip.Addr, bool) {
	idx, seg := m.macs.Load(), m.seg.Load()
	if idx == nil || seg == nil {
		return netip.Addr{}, false
	}
	slot, ok := idx.get(packMAC(k))
	if !ok {
		return netip.Addr{}, false
	}
	got, ip, ok := seg.v.Read(int(slot))
	if !ok {
		seg.faulted()
	}
	runtime.KeepAlive(seg) // the mapping lives as long as seg
	if !ok || got != k {
		return netip.Addr{}, false
	}
	return ip, true
}

// LookupMACs looks up every MAC of keys, as LookupMAC does, and sets
// ips[i] to the IP of keys[i], or to the zero Addr if it is not found; it
// returns how many it found. It sets the fault protection (see LookupMAC)
// once for the batch instead of once per MAC, so it costs less per MAC than
// LookupMAC in a loop. ips must be at least as long as keys.
func (m *Mirror) LookupMACs(keys []MAC, ips []netip.Addr) (found int) {
	ips = ips[:len(keys)]
	clear(ips)
	idx, seg := m.macs.Load(), m.seg.Load()
	if idx == nil || seg == nil {
		return 0
	}
	var err error
	defer func() {
		if err != nil { // the segment was truncated under the batch
			clear(ips)
			found = 0
			seg.faulted()
		}
		runtime.KeepAlive(seg) // the mapping lives as long as seg
	}()
	defer seg.v.Unguard(seg.v.Guard(), &err)
	for i, k := range keys {
		slot, ok := idx.get(packMAC(k))
		if !ok {
			continue
		}
		if got, ip, ok := seg.v.ReadUnguarded(int(slot)); ok && got == k {
			ips[i] = ip
			found++
		}
	}
	return found
}

// MACEntry is a MAC, its IP and, optionally, its interface.
type MACEntry struct {
	MAC MAC
	IP  netip.Addr
	Dev string // "" when not given
}

// MACEntries returns the local MAC table in `rtm mac show` order, each IP
// read from the shared segment.
func (m *Mirror) MACEntries() []MACEntry {
	var keys []mac.Addr
	if idx := m.macs.Load(); idx != nil {
		idx.each(func(k uint64, _ uint32) { keys = append(keys, unpackMAC(k)) })
	}
	slices.SortFunc(keys, mac.Compare)
	out := make([]MACEntry, 0, len(keys))
	for _, k := range keys {
		if ip, ok := m.LookupMAC(k); ok {
			out = append(out, MACEntry{k, ip, ""})
		}
	}
	m.mu.RLock()
	for i := range out {
		out[i].Dev = m.macDevs[out[i].MAC]
	}
	m.mu.RUnlock()
	return out
}

// Run keeps the mirror in sync until ctx is done. It returns ctx's error,
// or, with NoReconnect, the error that ended the connection.
func (m *Mirror) Run(ctx context.Context) error {
	m.mu.Lock()
	m.init()
	m.mu.Unlock()
	// The mapping is released for unmapping when Run ends; lookups
	// then report nothing.
	defer m.seg.Store(nil)
	backoff := 100 * time.Millisecond
	for {
		synced, err := m.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if m.NoReconnect {
			return err
		}
		if m.OnError != nil {
			m.OnError(err)
		}
		if synced {
			backoff = 100 * time.Millisecond
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// session subscribes once and applies what arrives until an error.
func (m *Mirror) session(ctx context.Context) (synced bool, err error) {
	network := m.Network
	if network == "" {
		network = "unix"
	}
	c, err := m.Dialer.Dial(ctx, network, m.Address)
	if err != nil {
		return false, err
	}
	defer c.Close()
	// Cancelling ctx interrupts the read; the session then says goodbye.
	interrupt := func() { c.nc.SetReadDeadline(time.Unix(1, 0)) }
	stop := context.AfterFunc(ctx, interrupt)
	defer stop()
	defer func() {
		if ctx.Err() != nil {
			c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.nc.Write(wire.AppendRequest(nil, 0, wire.KGoodbye, nil))
		}
	}()
	if m.Register {
		watchFlushSignals(m)
		defer unwatchFlushSignals(m)
	}
	var lastAck time.Time
	const registerID = 1
	// A mirror that holds a table asks for what it missed since; rtmd
	// says whether its state continues that table (a table of another
	// history comes with ReasonHistory).
	m.mu.Lock()
	resume := m.synced && !m.NoResume
	history, after := m.history, m.seq
	m.mu.Unlock()
	var body []byte
	if resume {
		body = wire.AppendResume(nil, history, after)
	}
	if _, err := c.nc.Write(wire.AppendRequest(nil, 0, wire.KSubscribe, body)); err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	register := func() error {
		// Before anyone waiting for the sync can go on (and, say, close
		// the mirror): rtmd then reads the registration before anything
		// sent after the sync.
		if !m.Register || synced {
			return nil
		}
		pid := binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid()))
		if _, err := c.nc.Write(wire.AppendRequest(nil, registerID, wire.KRegister, pid)); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		return nil
	}
	var (
		d        wire.Decoder
		next     *route.Table // the snapshot being received
		nextMACs *macIndex
		nextDevs map[mac.Addr]string
		nextSeg  *shm.View
		snap     uint64 // its sequence number
	)
	defer func() {
		if nextSeg != nil {
			nextSeg.Close()
		}
	}()
	emit := func(e Event) {
		if m.OnEvent != nil {
			m.OnEvent(e)
		}
	}
	for {
		typ, p, err := c.r.ReadFrame()
		if err != nil {
			if ctx.Err() != nil {
				return synced, ctx.Err()
			}
			if seg := m.seg.Load(); seg != nil && seg.kicked.Load() {
				return synced, fmt.Errorf("MAC table: segment %s failed under this client (truncated); resyncing", seg.v.Name)
			}
			return synced, fmt.Errorf("reading from rtmd: %w", err)
		}
		switch typ {
		case wire.TReply:
			// The reply to the registration: the only request a mirror
			// makes.
			if len(p) < 5 || binary.LittleEndian.Uint32(p) != registerID {
				return synced, errors.New("protocol error: unexpected reply on a subscription")
			}
			if p[4] != wire.StatusOK {
				return synced, fmt.Errorf("register: %w", serverError(p[4], p[5:]))
			}
		case wire.TSnapBegin:
			d.Reset(p)
			snap = d.U64("sequence")
			reason := d.U8("reason")
			d.U64("routes")
			if err := d.Finish(); err != nil {
				return synced, fmt.Errorf("bad snapshot header: %w", err)
			}
			next, nextMACs, nextDevs = new(route.Table), newMACIndex(0), make(map[mac.Addr]string)
			if nextSeg != nil {
				nextSeg.Close()
				nextSeg = nil
			}
			emit(Event{Kind: Reset, Seq: snap, Backlog: reason == wire.ReasonBacklog, History: reason == wire.ReasonHistory})
		case wire.TSnapshot:
			if next == nil {
				return synced, errors.New("protocol error: snapshot routes outside a snapshot")
			}
			err := d.Routes(p, func(r route.Route) {
				next.Set(&r)
				if m.OnEvent != nil {
					m.OnEvent(Event{Kind: Add, Seq: snap, Route: publicRoute(&r), More: true})
				}
			})
			if err != nil {
				return synced, fmt.Errorf("bad snapshot frame: %w", err)
			}
		case wire.TMACSeg:
			info, err := d.MACSeg(p)
			if err != nil {
				return synced, fmt.Errorf("bad MAC segment frame: %w", err)
			}
			v, err := c.openSegment(info.Name)
			if err != nil {
				return synced, err
			}
			if v.Gen != info.Gen || v.Capacity < int(info.Capacity) {
				v.Close()
				return synced, fmt.Errorf("MAC table: segment %s is generation %d of %d records, rtmd announced %d of %d", info.Name, v.Gen, v.Capacity, info.Gen, info.Capacity)
			}
			if next != nil {
				if nextSeg != nil {
					nextSeg.Close()
				}
				nextSeg = v
				break
			}
			// The segment grew: slots refer to the new one from here on.
			// The old mapping goes when the last reader lets go of it.
			m.seg.Store(newSegRef(v, interrupt))
		case wire.TSnapMACs:
			if next == nil || nextSeg == nil {
				return synced, errors.New("protocol error: snapshot MACs outside a snapshot, or before their segment")
			}
			var bad error
			err := d.MACSlots(p, func(k mac.Addr, slot uint32, dev string) {
				if int(slot) >= nextSeg.Capacity {
					bad = fmt.Errorf("protocol error: MAC %v in slot %d of a %d-record segment", k, slot, nextSeg.Capacity)
				}
				nextMACs = nextMACs.put(packMAC(k), slot)
				if dev != "" {
					nextDevs[k] = dev
				}
				if m.OnEvent != nil {
					e := Event{Kind: Add, Object: MACs, Seq: snap, MAC: k, Dev: dev, More: true}
					if got, ip, ok := nextSeg.Read(int(slot)); ok && got == k {
						e.IP = ip
					}
					m.OnEvent(e)
				}
			})
			if err == nil {
				err = bad
			}
			if err != nil {
				return synced, fmt.Errorf("bad snapshot MACs: %w", err)
			}
		case wire.TSynced:
			if next == nil || nextSeg == nil {
				return synced, errors.New("protocol error: synced outside a snapshot, or without a MAC segment")
			}
			if err := register(); err != nil {
				return synced, err
			}
			m.mu.Lock()
			m.history = c.History
			m.table, m.seq, m.macDevs = next, snap, nextDevs
			m.macs.Store(nextMACs)
			m.seg.Store(newSegRef(nextSeg, interrupt))
			nextSeg = nil
			if m.synced {
				m.resyncs++
			}
			m.synced, synced = true, true
			m.jump = 0
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
			next = nil
			emit(Event{Kind: Synced, Seq: snap})
		case wire.TResumed:
			d.Reset(p)
			seq := d.U64("sequence")
			if err := d.Finish(); err != nil {
				return synced, fmt.Errorf("bad resumed frame: %w", err)
			}
			if !resume || synced || seq != after {
				return synced, fmt.Errorf("protocol error: resumed at %d; this mirror asked to resume after %d: %v", seq, after, resume)
			}
			if err := register(); err != nil {
				return synced, err
			}
			m.mu.Lock()
			m.history = c.History // this run continues the table, from now on under its id
			m.mu.Unlock()
			synced = true
			emit(Event{Kind: Synced, Seq: seq, Resumed: true})
		case wire.TChanges:
			if !synced || next != nil {
				return synced, errors.New("protocol error: changes before the snapshot is complete")
			}
			if err := m.applyChanges(&d, p); err != nil {
				return synced, err
			}
			// Ack every 50 ms while changes pour in, and whenever the
			// mirror has caught up with what arrived.
			if now := time.Now(); now.Sub(lastAck) > 50*time.Millisecond || c.r.Buffered() == 0 {
				lastAck = now
				seq, _ := m.Seq()
				ack := binary.LittleEndian.AppendUint64(nil, seq)
				if _, err := c.nc.Write(wire.AppendRequest(nil, 0, wire.KAck, ack)); err != nil {
					return synced, fmt.Errorf("ack: %w", err)
				}
			}
		case wire.TError:
			return synced, serverError(wire.StatusError, p)
		default:
			return synced, fmt.Errorf("protocol error: unexpected frame type %d on a subscription", typ)
		}
	}
}

// applyChanges applies one Changes frame under the lock, then emits its
// events. A change that does not fit the local table (an add of a prefix
// that exists, a gap in the sequence) means the copy is wrong: the
// connection is dropped and Run resyncs.
func (m *Mirror) applyChanges(d *wire.Decoder, p []byte) error {
	var bad error
	events := m.events[:0]
	keep := m.OnEvent != nil
	m.mu.Lock()
	err := d.Changes(p, func(c wire.Change) {
		if bad != nil {
			return
		}
		if m.jump != 0 && c.Seq <= m.jump {
			// Covered by a flush already applied on its signal.
			if c.Seq == m.jump {
				m.jump = 0
			}
			return
		}
		if c.Seq != m.seq+1 {
			bad = fmt.Errorf("sequence gap: at %d, next change is %d", m.seq, c.Seq)
			return
		}
		var had bool
		kind := Add
		switch c.Op {
		case wire.OpAdd:
			_, had = m.table.Set(&c.Route)
			had = !had
		case wire.OpChange:
			kind = Change
			_, had = m.table.Set(&c.Route)
		case wire.OpDel:
			kind = Del
			_, had = m.table.Delete(c.Route.Key())
		case wire.OpMACAdd, wire.OpMACChange:
			idx := m.macs.Load()
			_, had = idx.get(packMAC(c.MAC))
			if c.Op == wire.OpMACAdd {
				had = !had
			} else {
				kind = Change
			}
			if seg := m.seg.Load(); seg == nil || int(c.Slot) >= seg.v.Capacity {
				had = false
			}
			if next := idx.put(packMAC(c.MAC), c.Slot); next != idx {
				m.macs.Store(next)
			}
			m.setMACDev(c.MAC, c.Dev)
		case wire.OpMACDel:
			kind = Del
			had = m.macs.Load().del(packMAC(c.MAC))
			m.setMACDev(c.MAC, "")
		case wire.OpFlush:
			kind, had = Flush, true
			m.table = new(route.Table)
			m.macs.Store(newMACIndex(0))
			m.macDevs = make(map[mac.Addr]string)
		}
		if !had {
			what := c.Route.Dst.String() + " table " + route.TableName(c.Route.Table)
			if c.Op >= wire.OpMACAdd && c.Op <= wire.OpMACDel {
				what = "mac " + c.MAC.String()
			}
			bad = fmt.Errorf("out of sync at %d: %s %s does not fit the local table", c.Seq, kind, what)
			return
		}
		m.seq = c.Seq
		if keep {
			e := Event{Kind: kind, Seq: c.Seq, MAC: c.MAC, Dev: c.Dev}
			if c.Op == wire.OpDel {
				e.Route = Route{Table: c.Route.Table, Dst: c.Route.Dst}
			} else if c.Op == wire.OpAdd || c.Op == wire.OpChange {
				e.Route = publicRoute(&c.Route)
			}
			if c.Op >= wire.OpMACAdd && c.Op <= wire.OpMACDel {
				e.Object = MACs
				e.IP = c.IP // the IP at this change; the segment may hold a later one
			}
			events = append(events, e)
		}
	})
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	for i, e := range events {
		e.More = i < len(events)-1
		m.OnEvent(e)
	}
	clear(events)
	m.events = events[:0]
	if err != nil {
		return fmt.Errorf("bad changes frame: %w", err)
	}
	return bad
}

// setMACDev records k's interface; the caller holds m.mu.
func (m *Mirror) setMACDev(k mac.Addr, dev string) {
	if dev == "" {
		delete(m.macDevs, k)
		return
	}
	if m.macDevs == nil {
		m.macDevs = make(map[mac.Addr]string)
	}
	m.macDevs[k] = dev
}

// FlushSignals returns how many SIGUSR1 the mirror has handled.
func (m *Mirror) FlushSignals() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.signals
}

// flushSignalled handles SIGUSR1: if rtmd's last flush, which the MAC
// segment's header holds, is later than the mirror, the mirror empties
// itself at that sequence number and skips the changes before it as the
// stream brings them. A late signal, for a flush the stream has brought
// already, changes nothing.
func (m *Mirror) flushSignalled() {
	seg := m.seg.Load()
	m.mu.Lock()
	m.signals++
	emptied := false
	if seg != nil && m.synced {
		if f := seg.v.Flush(); f > m.seq {
			m.table = new(route.Table)
			m.macs.Store(newMACIndex(0))
			m.macDevs = make(map[mac.Addr]string)
			m.seq, m.jump = f, f
			close(m.changed)
			m.changed = make(chan struct{})
			emptied = true
		}
	}
	m.mu.Unlock()
	if m.OnFlushSignal != nil {
		m.OnFlushSignal(emptied)
	}
}

// The process's SIGUSR1 handler, shared by its registered mirrors.
var flushSignals struct {
	once    sync.Once
	mu      sync.Mutex
	mirrors map[*Mirror]int
}

func watchFlushSignals(m *Mirror) {
	flushSignals.once.Do(func() {
		flushSignals.mirrors = make(map[*Mirror]int)
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGUSR1)
		go func() {
			for range ch {
				flushSignals.mu.Lock()
				for m := range flushSignals.mirrors {
					m.flushSignalled()
				}
				flushSignals.mu.Unlock()
			}
		}()
	})
	flushSignals.mu.Lock()
	flushSignals.mirrors[m]++
	flushSignals.mu.Unlock()
}

func unwatchFlushSignals(m *Mirror) {
	flushSignals.mu.Lock()
	if flushSignals.mirrors[m]--; flushSignals.mirrors[m] <= 0 {
		delete(flushSignals.mirrors, m)
	}
	flushSignals.mu.Unlock()
}
