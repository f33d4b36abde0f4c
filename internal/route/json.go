package route

import (
	"net/netip"
	"strconv"
)

// AppendJSON appends the route as one JSON object of `ip -j route show`,
// with ip's keys in ip's order:
//
//	{"type":"blackhole","dst":"10.0.0.0/8","gateway":"192.0.2.1","dev":"eth0",
//	 "table":"100","protocol":"bgp","prefsrc":"192.0.2.9","metric":5,"flags":[],
//	 "nexthops":[{"gateway":"192.0.2.1","dev":"eth0","weight":1,"flags":[]}]}
//
// As ip does, it leaves out type for unicast, table for main, protocol for
// boot, metric for 0, and writes "default" for a /0, a bare address for a
// host route, table and protocol as strings (names or numbers), and an
// IPv6 gateway of an IPv4 route as "via":{"family":"inet6","host":ADDR}.
// A multipath route has "nexthops" instead of gateway and dev.
func (r Route) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if r.Type != Unicast {
		b = append(b, `"type":"`...)
		b = append(b, r.Type.String()...)
		b = append(b, `",`...)
	}
	b = append(b, `"dst":"`...)
	b = appendDst(b, r.Dst)
	b = append(b, '"')
	if len(r.Hops) == 1 {
		b = appendHopJSON(append(b, ','), r.Hops[0], r.Dst)
	}
	if r.Table != TableMain {
		b = append(b, `,"table":"`...)
		b = appendTable(b, r.Table)
		b = append(b, '"')
	}
	if r.Proto != ProtoBoot {
		b = append(b, `,"protocol":"`...)
		b = append(b, r.Proto.String()...)
		b = append(b, '"')
	}
	if r.Src.IsValid() {
		b = append(b, `,"prefsrc":"`...)
		b = r.Src.AppendTo(b)
		b = append(b, '"')
	}
	if r.Metric != 0 {
		b = append(b, `,"metric":`...)
		b = strconv.AppendUint(b, uint64(r.Metric), 10)
	}
	b = append(b, `,"flags":[]`...)
	if len(r.Hops) > 1 {
		b = append(b, `,"nexthops":[`...)
		for i, h := range r.Hops {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if h.Gateway.IsValid() || h.Dev != "" {
				b = append(appendHopJSON(b, h, r.Dst), ',')
			}
			b = append(b, `"weight":`...)
			b = strconv.AppendUint(b, uint64(h.Weight), 10)
			b = append(b, `,"flags":[]}`...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendHopJSON appends the gateway and dev members of h, without a
// leading or trailing comma.
func appendHopJSON(b []byte, h NextHop, dst netip.Prefix) []byte {
	n := len(b)
	if h.Gateway.IsValid() {
		if h.Gateway.Is6() && dst.Addr().Is4() {
			b = append(b, `"via":{"family":"inet6","host":"`...)
			b = h.Gateway.AppendTo(b)
			b = append(b, `"}`...)
		} else {
			b = append(b, `"gateway":"`...)
			b = h.Gateway.AppendTo(b)
			b = append(b, '"')
		}
	}
	if h.Dev != "" {
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, `"dev":`...)
		b = appendJSONString(b, h.Dev)
	}
	return b
}

// appendJSONString appends s as a JSON string. Interface names are
// printable ASCII (CheckDev), but may hold a quote or a backslash.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < ' ' || c >= 0x7f:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
