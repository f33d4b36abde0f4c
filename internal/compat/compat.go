// Package compat encodes the fixed-size records that the C clients of the
// course project speak. They come in three layouts, all in host byte order
// (little-endian on x86-64), with addresses as NUL-padded text:
//
// course, the course design's own struct (the default), 72 bytes:
//
//	offset size field
//	0      4    op, uint32: 0 CREATE, 1 UPDATE, 2 DELETE
//	4      16   destination, dotted-quad text
//	20     1    mask, uint8, 0..32
//	21     16   gateway, dotted-quad text
//	37     32   outgoing interface name
//	69     3    padding, zero
//
// u16, the variant with a 2-byte mask that one published client uses, 72
// bytes:
//
//	0      4    op, uint32: 0 CREATE, 1 UPDATE, 2 DELETE
//	4      16   destination
//	20     2    mask, uint16, 0..32
//	22     16   gateway
//	38     32   outgoing interface name
//	70     2    padding, zero
//
// ghk84, the framing of another published client family, which also
// carries MAC entries, 84 bytes:
//
//	0      4    op, uint32: 0 CREATE, 1 UPDATE, 2 DELETE, 3 NONE
//	4      4    table, uint32: 0 routes, 1 MACs
//	8      66   routes: destination (16), mask uint16 (2), gateway (16),
//	            interface (32), as in u16 from offset 8
//	8      18   MACs: the MAC as text, "02:00:5e:10:00:01"
//	74     2    padding, zero
//	76     4    synchronized, int32: 0 wait, 1 routes done, 2 MACs done
//	80     4    loop, int32: 1, or 0 when the server is going away
//
// A ghk84 client reads a MAC's IP address from the POSIX shared-memory
// object named "/" + the MAC's text, as NUL-padded text (MACObject).
package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
)

// Ops.
const (
	Create = 0
	Update = 1
	Delete = 2
	None   = 3 // ghk84: a marker, no entry
)

// Tables of the ghk84 layout.
const (
	Routes = 0
	MACs   = 1
)

// The ghk84 synchronized field.
const (
	Wait       = 0 // more records follow
	RoutesDone = 1 // the routes are up to date
	MACsDone   = 2 // the MAC entries are up to date
)

// A Layout is one record framing.
type Layout struct {
	Name string // as -compat-layout takes it
	Size int    // bytes per record
	// Where the route starts, and the width of its mask: the gateway and
	// the interface follow the mask.
	body, mask int
	framed     bool // ghk84: table, MAC entries, synchronized and loop
}

// The layouts.
var (
	Course = &Layout{Name: "course", Size: 72, body: 4, mask: 1}
	U16    = &Layout{Name: "u16", Size: 72, body: 4, mask: 2}
	GHK84  = &Layout{Name: "ghk84", Size: 84, body: 8, mask: 2, framed: true}
)

// Layouts lists the layouts, the default first.
var Layouts = []*Layout{Course, U16, GHK84}

// LayoutByName returns the layout called name.
func LayoutByName(name string) (*Layout, error) {
	i := slices.IndexFunc(Layouts, func(l *Layout) bool { return l.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("layout %q: want one of %s", name, Names())
	}
	return Layouts[i], nil
}

// Names returns the layout names as "course, u16 or ghk84".
func Names() string {
	var b strings.Builder
	for i, l := range Layouts {
		switch {
		case i == len(Layouts)-1:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		b.WriteString(l.Name)
	}
	return b.String()
}

// HasMACs reports whether the layout carries MAC entries and the markers
// (ghk84).
func (l *Layout) HasMACs() bool { return l.framed }

func (l *Layout) String() string { return l.Name }

// field offsets of the route
func (l *Layout) dst() int  { return l.body }
func (l *Layout) bits() int { return l.body + 16 }
func (l *Layout) gw() int   { return l.body + 16 + l.mask }
func (l *Layout) oif() int  { return l.body + 32 + l.mask }

// Offsets of the ghk84 fields.
const (
	offTable = 4
	offMAC   = 8
	offSync  = 76
	offLoop  = 80
)

// A Record is one record's content. Routes have Dst, Gateway and Dev; a
// ghk84 MAC entry has MAC; the ghk84 fields are ignored by the other
// layouts.
type Record struct {
	Op      uint32
	Table   uint32 // ghk84: Routes or MACs
	Dst     netip.Prefix
	Gateway netip.Addr
	Dev     string
	MAC     mac.Addr
	Sync    int32 // ghk84: Wait, RoutesDone or MACsDone
	Loop    int32 // ghk84: 1, or 0 as the server closes the connection
}

// ErrNoForm is returned for a route that the record cannot carry.
var ErrNoForm = errors.New("no classic form")

// Holds reports whether the records can carry r: a unicast IPv4 route of
// the main table with one next hop that has an IPv4 gateway and an
// interface. Its metric, protocol and source address are not carried.
func Holds(r *route.Route) error {
	switch {
	case !r.Dst.Addr().Is4():
		return fmt.Errorf("%w: %v is not IPv4", ErrNoForm, r.Dst)
	case r.Table != route.TableMain:
		return fmt.Errorf("%w: table %s is not main", ErrNoForm, route.TableName(r.Table))
	case r.Type != route.Unicast:
		return fmt.Errorf("%w: a %s route", ErrNoForm, r.Type)
	case len(r.Hops) != 1:
		return fmt.Errorf("%w: %d next hops", ErrNoForm, len(r.Hops))
	case !r.Hops[0].Gateway.Is4() || r.Hops[0].Dev == "":
		return fmt.Errorf("%w: next hop %q lacks an IPv4 gateway or an interface", ErrNoForm, r.Hops[0])
	}
	return nil
}

// HoldsIP reports whether a ghk84 client can read ip from a MAC's object:
// it reads 16 bytes of text, NUL included, so only IPv4 fits.
func HoldsIP(ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("%w: %v is not IPv4", ErrNoForm, ip)
	}
	return nil
}

// Route returns the record of op on r, which Holds.
func Route(op uint32, r *route.Route) Record {
	return Record{Op: op, Table: Routes, Dst: r.Dst, Gateway: r.Hops[0].Gateway, Dev: r.Hops[0].Dev, Loop: 1}
}

// Append appends rec in layout l. The route's addresses must be IPv4 and
// its interface name at most 31 bytes (the route model allows 15).
func (l *Layout) Append(b []byte, rec *Record) []byte {
	b = slices.Grow(b, l.Size)
	n := len(b)
	b = b[:n+l.Size]
	p := b[n:]
	clear(p)
	binary.LittleEndian.PutUint32(p, rec.Op)
	if l.framed {
		binary.LittleEndian.PutUint32(p[offTable:], rec.Table)
		binary.LittleEndian.PutUint32(p[offSync:], uint32(rec.Sync))
		binary.LittleEndian.PutUint32(p[offLoop:], uint32(rec.Loop))
		if rec.Table == MACs {
			if rec.Op != None {
				rec.MAC.AppendTo(p[offMAC : offMAC : offMAC+17])
			}
			return b
		}
	}
	if rec.Op == None {
		return b
	}
	rec.Dst.Addr().AppendTo(p[l.dst() : l.dst() : l.dst()+15])
	if l.mask == 1 {
		p[l.bits()] = byte(rec.Dst.Bits())
	} else {
		binary.LittleEndian.PutUint16(p[l.bits():], uint16(rec.Dst.Bits()))
	}
	if rec.Gateway.IsValid() {
		rec.Gateway.AppendTo(p[l.gw() : l.gw() : l.gw()+15])
	}
	copy(p[l.oif():l.oif()+31], rec.Dev)
	return b
}

// Decode decodes one record of layout l, as a classic client reads it,
// checking every field.
func (l *Layout) Decode(p []byte) (Record, error) {
	if len(p) != l.Size {
		return Record{}, fmt.Errorf("%s record of %d bytes, want %d", l.Name, len(p), l.Size)
	}
	rec := Record{Op: binary.LittleEndian.Uint32(p)}
	maxOp := uint32(Delete)
	if l.framed {
		maxOp = None
		rec.Table = binary.LittleEndian.Uint32(p[offTable:])
		rec.Sync = int32(binary.LittleEndian.Uint32(p[offSync:]))
		rec.Loop = int32(binary.LittleEndian.Uint32(p[offLoop:]))
		switch {
		case rec.Table > MACs:
			return Record{}, fmt.Errorf("table %d, want 0 (routes) or 1 (MACs)", rec.Table)
		case rec.Sync < Wait || rec.Sync > MACsDone:
			return Record{}, fmt.Errorf("synchronized %d, want 0, 1 or 2", rec.Sync)
		case rec.Loop != 0 && rec.Loop != 1:
			return Record{}, fmt.Errorf("loop %d, want 0 or 1", rec.Loop)
		}
	}
	if rec.Op > maxOp {
		return Record{}, fmt.Errorf("op %d, want at most %d", rec.Op, maxOp)
	}
	if rec.Op == None {
		return rec, nil
	}
	if rec.Table == MACs {
		s, err := text(p, "mac", offMAC, 18)
		if err != nil {
			return Record{}, err
		}
		if rec.MAC, err = mac.Parse(s); err != nil || len(s) != 17 {
			return Record{}, fmt.Errorf("mac %q", s)
		}
		return rec, nil
	}
	s, err := text(p, "destination", l.dst(), 16)
	if err != nil {
		return Record{}, err
	}
	dst, err := netip.ParseAddr(s)
	if err != nil || !dst.Is4() {
		return Record{}, fmt.Errorf("destination %q", s)
	}
	bits := int(p[l.bits()])
	if l.mask == 2 {
		bits = int(binary.LittleEndian.Uint16(p[l.bits():]))
	}
	if rec.Dst, err = dst.Prefix(bits); err != nil || bits > 32 || rec.Dst.Addr() != dst {
		return Record{}, fmt.Errorf("mask %d of destination %s", bits, dst)
	}
	if s, err = text(p, "gateway", l.gw(), 16); err != nil {
		return Record{}, err
	}
	if s != "" {
		if rec.Gateway, err = netip.ParseAddr(s); err != nil || !rec.Gateway.Is4() {
			return Record{}, fmt.Errorf("gateway %q", s)
		}
	}
	if rec.Dev, err = text(p, "interface", l.oif(), 32); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// text returns the NUL-terminated text of the n-byte field at off, which
// must be NUL-padded to its end.
func text(p []byte, field string, off, n int) (string, error) {
	f := p[off : off+n]
	end := slices.Index(f, 0)
	if end < 0 {
		return "", fmt.Errorf("%s %q: no NUL in %d bytes", field, f, n)
	}
	for _, c := range f[end:] {
		if c != 0 {
			return "", fmt.Errorf("%s %q: not NUL-padded", field, f)
		}
	}
	return string(f[:end]), nil
}

// MACObject is the name of the POSIX shared-memory object in which a ghk84
// client reads m's IP address ("/02:00:5e:10:00:01"); ObjectFile is its
// file name under /dev/shm.
func MACObject(m mac.Addr) string { return "/" + m.String() }

// ObjectFile is the file name of m's object in /dev/shm.
func ObjectFile(m mac.Addr) string { return m.String() }

// ObjectSize is the size of a MAC's object: a ghk84 client maps and copies
// 16 bytes.
const ObjectSize = 16

// AppendObject appends the content of a MAC's object: ip as text,
// NUL-padded to ObjectSize. ip must be IPv4 (HoldsIP).
func AppendObject(b []byte, ip netip.Addr) []byte {
	n := len(b)
	b = ip.AppendTo(b)
	for len(b) < n+ObjectSize {
		b = append(b, 0)
	}
	return b
}
