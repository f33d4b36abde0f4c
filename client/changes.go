package client

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/rtm-project/rtm/internal/wire"
)

// Changes is a list of changes that Conn.Apply sends as one request and
// rtmd applies in order, in one turn of its loop: many small changes at
// the cost of one round trip. A flush by selector, which scans the whole
// table, is not among them: send it with Conn.FlushRoutes. The zero value
// is empty.
type Changes struct {
	buf []byte
	n   int
}

// Len returns the number of changes in the list.
func (l *Changes) Len() int { return l.n }

// Size returns the encoded size of the list, in bytes; a request is at
// most MaxChangesSize.
func (l *Changes) Size() int { return len(l.buf) }

// MaxChangesSize is the most bytes of changes one Apply may send (rtmd
// takes request frames of up to 256 KiB).
const MaxChangesSize = 250 << 10

// Reset empties the list, keeping its memory.
func (l *Changes) Reset() { l.buf, l.n = l.buf[:0], 0 }

func (l *Changes) add(kind byte, body func([]byte) []byte) {
	start := len(l.buf)
	l.buf = append(l.buf, kind, 0, 0, 0, 0)
	l.buf = body(l.buf)
	binary.LittleEndian.PutUint32(l.buf[start+1:], uint32(len(l.buf)-start-5))
	l.n++
}

func (l *Changes) route(kind byte, r Route) error {
	ir, err := r.internal()
	if err != nil {
		return err
	}
	l.add(kind, func(b []byte) []byte { return wire.AppendRoute(b, ir) })
	return nil
}

// Add adds a route add (see Conn.Add) to the list.
func (l *Changes) Add(r Route) error { return l.route(wire.KAdd, r) }

// Change adds a route change (see Conn.Change) to the list.
func (l *Changes) Change(r Route) error { return l.route(wire.KChange, r) }

// Replace adds a route replace (see Conn.Replace) to the list.
func (l *Changes) Replace(r Route) error { return l.route(wire.KReplace, r) }

// DeleteMatching adds a delete (see Conn.DeleteMatching) to the list.
func (l *Changes) DeleteMatching(s Selector) error {
	if s.Mode != Exact {
		return fmt.Errorf("delete: want an exact prefix")
	}
	if s.Table == 0 {
		s.Table = TableMain
	}
	is, err := s.internal()
	if err != nil {
		return err
	}
	l.add(wire.KDel, func(b []byte) []byte { return wire.AppendSelector(b, is) })
	return nil
}

func (l *Changes) mac(kind byte, e MACEntry) error {
	if err := checkMACEntry(e); err != nil {
		return err
	}
	l.add(kind, func(b []byte) []byte { return appendMACEntry(b, e) })
	return nil
}

// AddMAC adds a MAC add (see Conn.AddMAC) to the list.
func (l *Changes) AddMAC(e MACEntry) error { return l.mac(wire.KMACAdd, e) }

// ChangeMAC adds a MAC change (see Conn.ChangeMAC) to the list.
func (l *Changes) ChangeMAC(e MACEntry) error { return l.mac(wire.KMACChange, e) }

// ReplaceMAC adds a MAC replace (see Conn.ReplaceMAC) to the list.
func (l *Changes) ReplaceMAC(e MACEntry) error { return l.mac(wire.KMACReplace, e) }

// DeleteMAC adds a MAC delete (see Conn.DeleteMAC) to the list.
func (l *Changes) DeleteMAC(m MAC) {
	l.add(wire.KMACDel, func(b []byte) []byte { return append(b, m[:]...) })
}

// FlushAll adds a flush of both tables (see Conn.Flush) to the list.
func (l *Changes) FlushAll() { l.add(wire.KFlush, func(b []byte) []byte { return b }) }

// Applied is what rtmd did with a list of changes.
type Applied struct {
	Seq     uint64 // rtmd's sequence number after the list
	Applied int    // how many changes were applied
	// Failed lists the changes that failed, in order: without force, at
	// most one, the last rtmd tried.
	Failed []ChangeError
}

// ChangeError is a change of a list that failed.
type ChangeError struct {
	Index int   // its position in the list, from 0
	Err   error // a *ServerError, for errors.Is with ErrExists and the like
}

func (e *ChangeError) Error() string { return fmt.Sprintf("change %d: %v", e.Index+1, e.Err) }

func (e *ChangeError) Unwrap() error { return e.Err }

// Apply sends the list as one request. rtmd applies the changes in order
// and stops at the first that fails, leaving those after it unapplied, as
// `ip -batch` does; with force it applies every one it can. A change that
// failed is in Applied.Failed, not in the error, which is for the request
// as a whole (the connection, a permission, a list over MaxChangesSize).
func (c *Conn) Apply(ctx context.Context, l *Changes, force bool) (Applied, error) {
	if len(l.buf) > MaxChangesSize {
		return Applied{}, fmt.Errorf("apply: %d bytes of changes, more than the %d of one request", len(l.buf), MaxChangesSize)
	}
	var flags byte
	if force {
		flags = wire.BatchForce
	}
	_, body, err := c.simple(ctx, wire.KBatch, func(b []byte) []byte {
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint32(b, uint32(l.n))
		return append(b, l.buf...)
	})
	if err != nil {
		return Applied{}, err
	}
	var d wire.Decoder
	d.Reset(body)
	a := Applied{Seq: d.U64("sequence"), Applied: int(d.U32("applied"))}
	n := d.U32("failures")
	if d.Err() == nil && int(n) > l.n {
		return Applied{}, fmt.Errorf("bad batch reply: %d failures of %d changes", n, l.n)
	}
	last := -1
	for range n {
		idx, status, msg := int(d.U32("index")), d.U8("status"), d.String("message")
		if d.Err() != nil {
			break
		}
		if idx <= last || idx >= l.n {
			return Applied{}, fmt.Errorf("bad batch reply: failure of change %d after %d, of %d changes", idx, last, l.n)
		}
		last = idx
		if msg == "" {
			msg = fmt.Sprintf("failed (status %d)", status)
		}
		a.Failed = append(a.Failed, ChangeError{Index: idx, Err: &ServerError{Msg: msg, Status: status}})
	}
	if err := d.Finish(); err != nil {
		return Applied{}, fmt.Errorf("bad batch reply: %w", err)
	}
	return a, nil
}
