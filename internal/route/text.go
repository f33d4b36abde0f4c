package route

import (
	"net/netip"
	"strconv"
)

// String returns the route as `ip route show` prints it: one line, or for a
// multipath route a first line and one line per next hop, each begun with
// "\n\t".
func (r Route) String() string {
	return string(r.AppendText(make([]byte, 0, 64)))
}

// AppendText appends the route as `ip route show` prints it, word for word
// and in ip's order (iproute2's print_route):
//
//	[TYPE ]DST|default [via [inet6 ]GW] [dev DEV] [table T] [proto P] [src S] [metric M]
//
// The type is written unless unicast, the table unless main (always for a
// local route, which ip route add puts in the local table unless told),
// the protocol
// unless boot, the metric unless 0. An IPv6 default route is written
// "default" only when a gateway or src shows its family, else "::/0", so
// that it reads back as IPv6 without -6. A multipath route writes its next hops
// after the attributes, each on its own line begun with a tab:
//
//	DST [table T] [proto P] [src S] [metric M]
//		nexthop via GW dev DEV weight W
//
// Unlike ip, it writes no trailing space and no attribute rtm does not keep
// (scope, flags, pref).
func (r Route) AppendText(b []byte) []byte { return r.appendText(b, "\n\t") }

// AppendLine appends the route as AppendText does, but on one line: the next
// hops of a multipath route follow the attributes after a space. This is
// the form `ip route add` and `ip -batch` read.
func (r Route) AppendLine(b []byte) []byte { return r.appendText(b, " ") }

func (r *Route) appendText(b []byte, hopSep string) []byte {
	if r.Type != Unicast {
		b = append(b, r.Type.String()...)
		b = append(b, ' ')
	}
	if r.Dst.Bits() == 0 && r.Dst.Addr().Is6() && !r.says6() {
		// "default" would read back as IPv4 without -6.
		b = append(b, "::/0"...)
	} else {
		b = appendDst(b, r.Dst)
	}
	if len(r.Hops) == 1 {
		b = appendHop(b, r.Hops[0], r.Dst)
	}
	if r.Table != TableMain || r.Type == Local {
		b = append(b, " table "...)
		b = appendTable(b, r.Table)
	}
	if r.Proto != ProtoBoot {
		b = append(b, " proto "...)
		b = append(b, r.Proto.String()...)
	}
	if r.Src.IsValid() {
		b = append(b, " src "...)
		b = r.Src.AppendTo(b)
	}
	if r.Metric != 0 {
		b = append(b, " metric "...)
		b = strconv.AppendUint(b, uint64(r.Metric), 10)
	}
	if len(r.Hops) > 1 {
		for _, h := range r.Hops {
			b = append(b, hopSep...)
			b = append(b, "nexthop"...)
			b = appendHop(b, h, r.Dst)
			b = append(b, " weight "...)
			b = strconv.AppendUint(b, uint64(h.Weight), 10)
		}
	}
	return b
}

// says6 reports whether the words of r show that it is an IPv6 route
// without its destination: the first gateway is IPv6 (written without
// "inet6") or src is, as ParseOptions reads "default".
func (r *Route) says6() bool {
	for _, h := range r.Hops {
		if h.Gateway.IsValid() {
			return h.Gateway.Is6()
		}
	}
	return r.Src.Is6()
}

// appendDst appends dst as ip prints it: "default" for a /0, a bare address
// for a host route.
func appendDst(b []byte, dst netip.Prefix) []byte {
	switch dst.Bits() {
	case 0:
		return append(b, "default"...)
	case dst.Addr().BitLen():
		return dst.Addr().AppendTo(b)
	}
	return dst.AppendTo(b)
}

// appendHop appends " via GW dev DEV", with "inet6" before an IPv6 gateway
// of an IPv4 route.
func appendHop(b []byte, h NextHop, dst netip.Prefix) []byte {
	if h.Gateway.IsValid() {
		b = append(b, " via "...)
		if h.Gateway.Is6() && dst.Addr().Is4() {
			b = append(b, "inet6 "...)
		}
		b = h.Gateway.AppendTo(b)
	}
	if h.Dev != "" {
		b = append(b, " dev "...)
		b = append(b, h.Dev...)
	}
	return b
}

func appendTable(b []byte, n uint32) []byte {
	if s, ok := tableNames[n]; ok {
		return append(b, s...)
	}
	return strconv.AppendUint(b, uint64(n), 10)
}
