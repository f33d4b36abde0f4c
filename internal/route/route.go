// Package route defines a route, its text form, and the routing table that
// rtmd and every client keep.
//
// Values are normalised once, at the edge: a Route that passed Parse or
// Validate has a masked prefix, a gateway of the same family and a valid
// interface name, and the rest of rtm relies on that.
package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MaxDevLen is the longest interface name a route may carry, as in Linux
// (IFNAMSIZ less the terminating NUL).
const MaxDevLen = 15

// MaxHops is the most next hops a route may have.
const MaxHops = 32

// NextHop is one way a route sends packets: a gateway, an outgoing
// interface, or both, and a weight among the route's next hops.
type NextHop struct {
	Gateway netip.Addr // invalid (the zero Addr) for an on-link next hop
	Dev     string     // "" when not given
	Weight  uint16     // 1..256; 1 unless the route has several next hops
}

// Attrs is everything about a route except its key (table and prefix).
// Tables intern Attrs, since real tables have few distinct ones.
//
// Hops of an Attrs that a Table returned are shared with the table and
// must not be modified.
type Attrs struct {
	Type   Type
	Proto  Proto
	Metric uint32
	Src    netip.Addr // preferred source address; invalid when not given
	Hops   []NextHop  // unicast: 1..MaxHops, in order; local: 0 or 1 (dev only); others: none
}

// Route is a route in one table: the key (Table, Dst) and its attributes.
type Route struct {
	Table uint32 // 1..2^32-1; TableMain unless given
	Dst   netip.Prefix
	Attrs
}

// Key identifies a route.
type Key struct {
	Table uint32
	Dst   netip.Prefix
}

// Key returns the route's key.
func (r *Route) Key() Key { return Key{r.Table, r.Dst} }

// Equal reports whether a and b are the same attributes.
func (a *Attrs) Equal(b *Attrs) bool {
	return a.Type == b.Type && a.Proto == b.Proto && a.Metric == b.Metric &&
		a.Src == b.Src && slices.Equal(a.Hops, b.Hops)
}

// Equal reports whether r and o are the same route.
func (r *Route) Equal(o *Route) bool {
	return r.Table == o.Table && r.Dst == o.Dst && r.Attrs.Equal(&o.Attrs)
}

// Simple returns the most common route: unicast, in the main table, by
// protocol static, through one next hop.
func Simple(dst netip.Prefix, gw netip.Addr, dev string) Route {
	return Route{Table: TableMain, Dst: dst, Attrs: Attrs{Type: Unicast, Proto: ProtoStatic,
		Hops: []NextHop{{Gateway: gw, Dev: dev, Weight: 1}}}}
}

// FieldError reports a bad value in one named field of a route.
type FieldError struct {
	Field string // "dst", "gateway", "dev", ...
	Value string
	Msg   string
}

func (e *FieldError) Error() string {
	v := e.Value
	if len(v) > maxShown {
		v = v[:maxShown] + "..."
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Field, v, e.Msg)
}

// maxShown is the most bytes of a bad value an error repeats: a peer's
// megabyte-long word is not worth a megabyte-long log line.
const maxShown = 64

// ParsePrefix parses a destination prefix. A bare address means a host route
// (/32 or /128). A prefix with host bits set is refused, as `ip` refuses it,
// with the masked prefix as a hint.
func ParsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, &FieldError{"dst", s, trimNetipMsg(err)}
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, &FieldError{"dst", s, trimNetipMsg(err)}
		}
		if a.Zone() != "" {
			return netip.Prefix{}, &FieldError{"dst", s, "zones are not allowed"}
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if err := checkPrefix(p); err != nil {
		return netip.Prefix{}, &FieldError{"dst", s, err.Error()}
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, &FieldError{"dst", s, "invalid prefix for given prefix length (host bits set); did you mean " + m.String() + "?"}
	}
	return p, nil
}

// ParseAddr parses an address to look up or to use as a gateway; field names
// it in errors.
func ParseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &FieldError{field, s, trimNetipMsg(err)}
	}
	if err := checkAddr(a); err != nil {
		return netip.Addr{}, &FieldError{field, s, err.Error()}
	}
	return a, nil
}

// CheckDev reports whether s is a valid interface name: 1 to MaxDevLen
// bytes of printable ASCII without spaces or slashes, as Linux allows.
func CheckDev(s string) error {
	if len(s) == 0 {
		return &FieldError{"dev", s, "empty"}
	}
	if len(s) > MaxDevLen {
		return &FieldError{"dev", s, fmt.Sprintf("longer than %d bytes", MaxDevLen)}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '/' || c == ':' {
			q := fmt.Sprintf("%q", c)
			if c >= 0x80 { // %q would show the Latin-1 character c is the number of
				q = fmt.Sprintf(`'\x%02x'`, c)
			}
			return &FieldError{"dev", s, fmt.Sprintf("byte %s at %d is not allowed in an interface name", q, i)}
		}
	}
	return nil
}

// Validate reports whether r is a well-formed, normalised route. Decoders of
// routes from other processes call it before anything touches a table.
func (r *Route) Validate() error {
	if r.Table == 0 {
		return &FieldError{"table", "0", "not a table number (1..4294967295)"}
	}
	if err := checkPrefix(r.Dst); err != nil {
		return &FieldError{"dst", r.Dst.String(), err.Error()}
	}
	if r.Dst != r.Dst.Masked() {
		return &FieldError{"dst", r.Dst.String(), "host bits set"}
	}
	if !r.Type.Valid() {
		return &FieldError{"type", strconv.Itoa(int(r.Type)), "not a route type rtm keeps"}
	}
	if r.Proto == 0 {
		return &FieldError{"proto", "0", "not a protocol rtm keeps (1..255)"}
	}
	if r.Src.IsValid() {
		if err := checkAddr(r.Src); err != nil {
			return &FieldError{"src", r.Src.String(), err.Error()}
		}
		if r.Src.Is4() != r.Dst.Addr().Is4() {
			return &FieldError{"src", r.Src.String(), "not the family of dst " + r.Dst.String()}
		}
	}
	return r.checkHops()
}

func (r *Route) checkHops() error {
	hops := r.Hops
	switch {
	case r.Type == Unicast && len(hops) == 0:
		return &FieldError{"nexthop", "", "a unicast route needs a next hop (via GATEWAY or dev NAME)"}
	case r.Type == Local && len(hops) > 1:
		return &FieldError{"nexthop", strconv.Itoa(len(hops)), "a local route has at most one device"}
	case !r.Type.HasHops() && len(hops) > 0:
		return &FieldError{"nexthop", hops[0].String(), "a " + r.Type.String() + " route has no next hop"}
	case len(hops) > MaxHops:
		return &FieldError{"nexthop", strconv.Itoa(len(hops)), fmt.Sprintf("more than %d next hops", MaxHops)}
	}
	for i, h := range hops {
		if err := h.check(r.Dst); err != nil {
			return err
		}
		if r.Type == Local && h.Gateway.IsValid() {
			return &FieldError{"gateway", h.Gateway.String(), "a local route has no gateway"}
		}
		if len(hops) == 1 && h.Weight != 1 {
			return &FieldError{"weight", strconv.Itoa(int(h.Weight)), "a weight needs several next hops"}
		}
		for _, o := range hops[:i] {
			if o.Gateway == h.Gateway && o.Dev == h.Dev {
				return &FieldError{"nexthop", h.String(), "given twice"}
			}
		}
	}
	return nil
}

// check reports whether h is a valid next hop of a route to dst.
func (h NextHop) check(dst netip.Prefix) error {
	if !h.Gateway.IsValid() && h.Dev == "" {
		return &FieldError{"nexthop", "", "needs a gateway (via) or a device (dev)"}
	}
	if h.Gateway.IsValid() {
		if err := checkAddr(h.Gateway); err != nil {
			return &FieldError{"gateway", h.Gateway.String(), err.Error()}
		}
		// An IPv4 route may go through an IPv6 gateway (via inet6), as
		// Linux allows; not the other way round.
		if !dst.Addr().Is4() && h.Gateway.Is4() {
			return &FieldError{"gateway", h.Gateway.String(), "not the family of dst " + dst.String()}
		}
	}
	if h.Dev != "" {
		if err := CheckDev(h.Dev); err != nil {
			return err
		}
	}
	if h.Weight < 1 || h.Weight > 256 {
		return &FieldError{"weight", strconv.Itoa(int(h.Weight)), "not in 1..256"}
	}
	return nil
}

// String returns the next hop as `ip` writes it, without the weight.
func (h NextHop) String() string {
	var b []byte
	if h.Gateway.IsValid() {
		b = append(b, "via "...)
		b = h.Gateway.AppendTo(b)
	}
	if h.Dev != "" {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, "dev "...)
		b = append(b, h.Dev...)
	}
	return string(b)
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("not a valid prefix")
	}
	return checkAddr(p.Addr())
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("not a valid address")
	case a.Zone() != "":
		return errors.New("zones are not allowed")
	case a.Is4In6():
		return errors.New("IPv4-mapped IPv6 addresses are not allowed; use the IPv4 form")
	}
	return nil
}

// trimNetipMsg drops the input that netip repeats in its messages, since
// FieldError names the value already.
func trimNetipMsg(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "netip.Parse") {
		return msg[i+3:]
	}
	return msg
}

// Compare orders routes by family (IPv4 first), then prefix address, then
// prefix length: the order of `rtm route show`.
func Compare(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
