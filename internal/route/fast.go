package route

import "net/netip"

// parseLineV4 parses the common line
//
//	A.B.C.D/N via E.F.G.H dev NAME[ proto static][ metric M]
//
// with single spaces (trailing white space allowed), as `rtm route show`
// prints it, into *r with hops as the array of r.Hops, several times faster
// than the general parser and without allocating. It reports false for
// anything else, valid or not (host bits set included), and the general
// parser then reads the line, which also makes the error messages.
func parseLineV4(r *Route, hops []NextHop, s string) bool {
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	dst, s, ok := parseV4(s)
	if !ok || len(s) < 2 || s[0] != '/' {
		return false
	}
	bits, i := 0, 1
	for ; i < len(s) && i < 4 && s[i] >= '0' && s[i] <= '9'; i++ {
		bits = bits*10 + int(s[i]-'0')
	}
	if i == 1 || i > 3 || bits > 32 || (i == 3 && s[1] == '0') {
		return false
	}
	s = s[i:]
	if len(s) < 5 || s[:5] != " via " {
		return false
	}
	gw, s, ok := parseV4(s[5:])
	if !ok || len(s) < 6 || s[:5] != " dev " {
		return false
	}
	s = s[5:]
	n := 0
	for n < len(s) && s[n] != ' ' {
		c := s[n]
		if c < ' ' || c > '~' || c == '/' || c == ':' {
			return false
		}
		n++
	}
	if n == 0 || n > MaxDevLen {
		return false
	}
	dev := s[:n]
	s = s[n:]
	const proto = " proto static"
	if len(s) >= len(proto) && s[:len(proto)] == proto {
		s = s[len(proto):]
	}
	var metric uint32
	if s != "" {
		const kw = " metric "
		if len(s) <= len(kw) || s[:len(kw)] != kw || len(s) > len(kw)+10 {
			return false
		}
		m := uint64(0)
		for _, c := range []byte(s[len(kw):]) {
			if c < '0' || c > '9' {
				return false
			}
			m = m*10 + uint64(c-'0')
		}
		if m > 1<<32-1 {
			return false
		}
		metric = uint32(m)
	}
	p := netip.PrefixFrom(dst, bits)
	if p.Masked() != p {
		return false
	}
	*r = Route{Table: TableMain, Dst: p, Attrs: Attrs{Type: Unicast, Proto: ProtoStatic, Metric: metric,
		Hops: append(hops, NextHop{Gateway: gw, Dev: dev, Weight: 1})}}
	return true
}

// parseV4 parses a dotted quad at the start of s, as netip does (decimal,
// no leading zeros), and returns the rest of s.
func parseV4(s string) (netip.Addr, string, bool) {
	var a [4]byte
	for k := range 4 {
		if k > 0 {
			if len(s) == 0 || s[0] != '.' {
				return netip.Addr{}, "", false
			}
			s = s[1:]
		}
		v, i := 0, 0
		for ; i < len(s) && i < 4 && s[i] >= '0' && s[i] <= '9'; i++ {
			v = v*10 + int(s[i]-'0')
		}
		if i == 0 || i > 3 || v > 255 || (i > 1 && s[0] == '0') {
			return netip.Addr{}, "", false
		}
		a[k] = byte(v)
		s = s[i:]
	}
	return netip.AddrFrom4(a), s, true
}
