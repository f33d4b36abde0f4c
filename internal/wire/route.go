package wire

import (
	"encoding/binary"
	"net/netip"

	"github.com/rtm-project/rtm/internal/route"
)

// Route flags: which optional fields follow the prefix. A field whose flag
// is clear has its default: table main, type unicast, protocol static,
// metric 0, no source address.
const (
	rfTable  = 1 << 0
	rfType   = 1 << 1
	rfProto  = 1 << 2
	rfMetric = 1 << 3
	rfSrc    = 1 << 4
	rfAll    = rfTable | rfType | rfProto | rfMetric | rfSrc
)

// AppendRoute appends a route: prefix, flags, the optional fields the flags
// name, the number of next hops and each next hop (gateway with its family
// byte, 0 for none; weight less one; interface name, "" for none).
func AppendRoute(b []byte, r route.Route) []byte {
	b = AppendPrefix(b, r.Dst)
	var flags byte
	if r.Table != route.TableMain {
		flags |= rfTable
	}
	if r.Type != route.Unicast {
		flags |= rfType
	}
	if r.Proto != route.ProtoStatic {
		flags |= rfProto
	}
	if r.Metric != 0 {
		flags |= rfMetric
	}
	if r.Src.IsValid() {
		flags |= rfSrc
	}
	b = append(b, flags)
	if flags&rfTable != 0 {
		b = binary.LittleEndian.AppendUint32(b, r.Table)
	}
	if flags&rfType != 0 {
		b = append(b, byte(r.Type))
	}
	if flags&rfProto != 0 {
		b = append(b, byte(r.Proto))
	}
	if flags&rfMetric != 0 {
		b = binary.LittleEndian.AppendUint32(b, r.Metric)
	}
	if flags&rfSrc != 0 {
		b = AppendAddr(b, r.Src)
	}
	b = append(b, byte(len(r.Hops)))
	for _, h := range r.Hops {
		if h.Gateway.IsValid() {
			b = AppendAddr(b, h.Gateway)
		} else {
			b = append(b, 0)
		}
		b = append(b, byte(h.Weight-1))
		b = AppendDev(b, h.Dev)
	}
	return b
}

// AppendDev appends an interface name: length byte and bytes.
func AppendDev(b []byte, dev string) []byte {
	return append(append(b, byte(len(dev))), dev...)
}

// AppendKey appends a route's key: table, prefix.
func AppendKey(b []byte, k route.Key) []byte {
	b = binary.LittleEndian.AppendUint32(b, k.Table)
	return AppendPrefix(b, k.Dst)
}

// Selector fields: which optional fields follow the prefix.
const (
	sfDev    = 1 << 0
	sfVia    = 1 << 1
	sfProto  = 1 << 2
	sfType   = 1 << 3
	sfMetric = 1 << 4
	sfAll    = sfDev | sfVia | sfProto | sfType | sfMetric
)

// AppendSelector appends a route selector: table (0 for all), prefix mode,
// the prefix unless the mode is AnyPrefix, flags, and the fields they name.
func AppendSelector(b []byte, s route.Selector) []byte {
	b = binary.LittleEndian.AppendUint32(b, s.Table)
	b = append(b, byte(s.Mode))
	if s.Mode != route.AnyPrefix {
		b = AppendPrefix(b, s.Prefix)
	}
	var flags byte
	if s.Dev != "" {
		flags |= sfDev
	}
	if s.Via.IsValid() {
		flags |= sfVia
	}
	if s.HasProto {
		flags |= sfProto
	}
	if s.Type != 0 {
		flags |= sfType
	}
	if s.HasMetric {
		flags |= sfMetric
	}
	b = append(b, flags)
	if s.Dev != "" {
		b = AppendDev(b, s.Dev)
	}
	if s.Via.IsValid() {
		b = AppendAddr(b, s.Via)
	}
	if s.HasProto {
		b = append(b, byte(s.Proto))
	}
	if s.Type != 0 {
		b = append(b, byte(s.Type))
	}
	if s.HasMetric {
		b = binary.LittleEndian.AppendUint32(b, s.Metric)
	}
	return b
}

// Route reads a route as AppendRoute writes it and validates it. The next
// hops of the route may be shared with routes decoded before it (a table
// has few distinct ones), and must not be modified.
func (d *Decoder) Route() route.Route {
	dst := d.Prefix("dst")
	off := d.off
	flags := d.U8("flags")
	if d.err != nil {
		return route.Route{}
	}
	if flags&^rfAll != 0 {
		d.fail("flags", off, "unknown flags %#x", flags&^rfAll)
		return route.Route{}
	}
	r := route.Route{Table: route.TableMain, Dst: dst,
		Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic}}
	// An optional field holds something other than its default, so that
	// each route has one encoding.
	if flags&rfTable != 0 {
		off := d.off
		if r.Table = d.U32("table"); d.err == nil && r.Table == route.TableMain {
			d.fail("table", off, "the default given")
		}
	}
	if flags&rfType != 0 {
		off := d.off
		if r.Type = route.Type(d.U8("type")); d.err == nil && r.Type == route.Unicast {
			d.fail("type", off, "the default given")
		}
	}
	if flags&rfProto != 0 {
		off := d.off
		if r.Proto = route.Proto(d.U8("proto")); d.err == nil && r.Proto == route.ProtoStatic {
			d.fail("proto", off, "the default given")
		}
	}
	if flags&rfMetric != 0 {
		off := d.off
		if r.Metric = d.U32("metric"); d.err == nil && r.Metric == 0 {
			d.fail("metric", off, "the default given")
		}
	}
	if flags&rfSrc != 0 {
		r.Src = d.Addr("src")
	}
	r.Hops = d.nextHops()
	if d.err != nil {
		return route.Route{}
	}
	if err := r.Validate(); err != nil {
		d.fail("route", off, "%v", err)
		return route.Route{}
	}
	return r
}

// hopCache remembers the next-hop lists a Decoder decoded last, by their
// bytes, so that a million routes through a few next hops share a few
// slices.
type hopCache struct {
	m map[string][]route.NextHop
}

const maxHopLists = 4096

func (d *Decoder) nextHops() []route.NextHop {
	start := d.off
	n := int(d.U8("next hops"))
	if d.err != nil {
		return nil
	}
	if n > route.MaxHops {
		d.fail("next hops", start, "%d next hops, limit %d", n, route.MaxHops)
		return nil
	}
	if n == 0 {
		return nil
	}
	// Find the end of the list first: a list seen before is reused as is.
	end := d.off
	for range n {
		if end >= len(d.b) {
			break
		}
		switch d.b[end] {
		case 4:
			end += 1 + 4
		case 6:
			end += 1 + 16
		default:
			end++
		}
		end++ // weight
		if end < len(d.b) {
			end += 1 + int(d.b[end])
		}
	}
	if end <= len(d.b) {
		if hops, ok := d.hops.m[string(d.b[start:end])]; ok {
			d.off = end
			return hops
		}
	}
	hops := make([]route.NextHop, n)
	for i := range hops {
		h := &hops[i]
		off := d.off
		switch fam := d.U8("gateway"); fam {
		case 0:
		case 4:
			h.Gateway = d.addrBytes("gateway", 4)
		case 6:
			h.Gateway = d.addrBytes("gateway", 16)
		default:
			d.fail("gateway", off, "family %d, want 0, 4 or 6", fam)
		}
		h.Weight = uint16(d.U8("weight")) + 1
		h.Dev = d.Dev()
	}
	if d.err != nil {
		return nil
	}
	if d.hops.m == nil || len(d.hops.m) >= maxHopLists {
		d.hops.m = make(map[string][]route.NextHop)
	}
	d.hops.m[string(d.b[start:d.off])] = hops
	return hops
}

// Dev reads an interface name, "" for none, interned.
func (d *Decoder) Dev() string {
	off := d.off
	n := int(d.U8("dev"))
	name := d.take("dev", n)
	if d.err != nil || n == 0 {
		return ""
	}
	dev := d.lastDev
	ok := dev == string(name)
	if !ok {
		dev, ok = d.devs[string(name)]
	}
	if !ok {
		dev = string(name)
		if err := route.CheckDev(dev); err != nil {
			d.fail("dev", off, "%v", err)
			return ""
		}
		if d.devs == nil {
			d.devs = make(map[string]string)
		}
		if len(d.devs) < maxDevNames {
			d.devs[dev] = dev
		}
	}
	d.lastDev = dev
	return dev
}

// Key reads a route's key as AppendKey writes it.
func (d *Decoder) Key() route.Route {
	off := d.off
	t := d.U32("table")
	if d.err == nil && t == 0 {
		d.fail("table", off, "table 0")
	}
	return route.Route{Table: t, Dst: d.Prefix("dst")}
}

// Selector reads a selector as AppendSelector writes it and validates it.
func (d *Decoder) Selector() route.Selector {
	s := route.Selector{Table: d.U32("table")}
	off := d.off
	s.Mode = route.PrefixMode(d.U8("mode"))
	if d.err == nil && s.Mode > route.Match {
		d.fail("mode", off, "unknown prefix mode %d", s.Mode)
	}
	if s.Mode != route.AnyPrefix {
		s.Prefix = d.Prefix("prefix")
	}
	off = d.off
	flags := d.U8("flags")
	if d.err == nil && flags&^sfAll != 0 {
		d.fail("flags", off, "unknown flags %#x", flags&^sfAll)
	}
	if flags&sfDev != 0 {
		s.Dev = d.Dev()
		if d.err == nil && s.Dev == "" {
			d.fail("dev", off, "empty")
		}
	}
	if flags&sfVia != 0 {
		s.Via = d.Addr("via")
	}
	if flags&sfProto != 0 {
		s.Proto, s.HasProto = route.Proto(d.U8("proto")), true
	}
	if flags&sfType != 0 {
		s.Type = route.Type(d.U8("type"))
		if d.err == nil && s.Type == 0 {
			d.fail("type", off, "type 0")
		}
	}
	if flags&sfMetric != 0 {
		s.Metric, s.HasMetric = d.U32("metric"), true
	}
	if d.err == nil {
		if err := s.Validate(); err != nil {
			d.fail("selector", off, "%v", err)
		}
	}
	return s
}

// Routes decodes a Snapshot payload or the routes of a load chunk: a count
// and that many routes.
func (d *Decoder) Routes(p []byte, fn func(route.Route)) error {
	d.Reset(p)
	n := d.U32("count")
	for i := uint32(0); i < n && d.err == nil; i++ {
		r := d.Route()
		if d.err == nil {
			fn(r)
		}
	}
	return d.Finish()
}

// RouteKey returns the key of the encoded route at the start of b, which a
// Decoder has checked.
func RouteKey(b []byte) route.Key {
	var p netip.Prefix
	n := 4
	if b[0] == 4 {
		p = netip.PrefixFrom(netip.AddrFrom4([4]byte(b[2:6])), int(b[1]))
	} else {
		n = 16
		p = netip.PrefixFrom(netip.AddrFrom16([16]byte(b[2:18])), int(b[1]))
	}
	k := route.Key{Table: route.TableMain, Dst: p}
	if b[2+n]&rfTable != 0 {
		k.Table = binary.LittleEndian.Uint32(b[3+n:])
	}
	return k
}

// RoutePrefix returns the prefix of the encoded route at the start of b,
// which a Decoder has checked.
func RoutePrefix(b []byte) netip.Prefix {
	if b[0] == 4 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[2:6])), int(b[1]))
	}
	return netip.PrefixFrom(netip.AddrFrom16([16]byte(b[2:18])), int(b[1]))
}
