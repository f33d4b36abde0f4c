// Package compat encodes the classic fixed-size route record that the C
// clients of the course project speak: 72 bytes in host byte order
// (little-endian on x86-64), text addresses, one record per read().
//
//	offset size field
//	0      4    op, uint32: 0 CREATE, 1 UPDATE, 2 DELETE
//	4      16   destination, dotted-quad text, NUL-padded
//	20     2    mask, uint16, 0..32
//	22     16   gateway, dotted-quad text, NUL-padded
//	38     32   outgoing interface name, NUL-padded
//	70     2    padding, zero
package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/rtm-project/rtm/internal/route"
)

// Size is the size of a record.
const Size = 72

// Ops.
const (
	Create = 0
	Update = 1
	Delete = 2
)

// ErrNoForm is returned for a route that the record cannot carry.
var ErrNoForm = errors.New("no classic form")

// Holds reports whether the record can carry r: a unicast IPv4 route of
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

// Append appends the record for op on r, which the record must hold. A
// DELETE carries the route's last gateway and interface, as the classic
// server did.
func Append(b []byte, op uint32, r route.Route) ([]byte, error) {
	if err := Holds(&r); err != nil {
		return b, err
	}
	h := r.Hops[0]
	var rec [Size]byte
	binary.LittleEndian.PutUint32(rec[0:], op)
	copy(rec[4:20], r.Dst.Addr().String())
	binary.LittleEndian.PutUint16(rec[20:], uint16(r.Dst.Bits()))
	copy(rec[22:38], h.Gateway.String())
	copy(rec[38:70], h.Dev)
	return append(b, rec[:]...), nil
}

// Record is a decoded record.
type Record struct {
	Op    uint32
	Route route.Route
}

// Decode decodes one record, as a classic client reads it.
func Decode(rec []byte) (Record, error) {
	if len(rec) != Size {
		return Record{}, fmt.Errorf("record of %d bytes, want %d", len(rec), Size)
	}
	op := binary.LittleEndian.Uint32(rec[0:])
	if op > Delete {
		return Record{}, fmt.Errorf("op %d", op)
	}
	dst, err := netip.ParseAddr(cstring(rec[4:20]))
	if err != nil || !dst.Is4() {
		return Record{}, fmt.Errorf("destination %q", cstring(rec[4:20]))
	}
	bits := int(binary.LittleEndian.Uint16(rec[20:]))
	if bits > 32 {
		return Record{}, fmt.Errorf("mask %d", bits)
	}
	var gw netip.Addr
	if s := cstring(rec[22:38]); s != "" {
		if gw, err = netip.ParseAddr(s); err != nil {
			return Record{}, fmt.Errorf("gateway %q", s)
		}
	}
	return Record{Op: op, Route: route.Simple(netip.PrefixFrom(dst, bits), gw, cstring(rec[38:70]))}, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
