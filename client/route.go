package client

import (
	"errors"
	"net/netip"
	"strconv"

	"github.com/rtm-project/rtm/internal/route"
)

// Route is a route in one of rtmd's tables, with iproute2's meanings: its
// key is (Table, Dst), and the rest says what the route does.
//
// Zero fields mean the defaults on input: table main, type unicast,
// protocol static, weight 1. Routes that rtm returns have every field set.
type Route struct {
	Table    uint32       // 1..2^32-1; 0 means TableMain
	Dst      netip.Prefix // masked: a prefix with host bits set is refused
	Type     RouteType    // 0 means Unicast
	Protocol Protocol     // who installed the route; 0 means ProtoStatic
	Metric   uint32       // the route's priority; lower is preferred
	Src      netip.Addr   // preferred source address; the zero Addr for none
	// NextHops are where the route sends packets: one or more (up to 32)
	// for a unicast route, none for blackhole, unreachable, prohibit and
	// throw, at most one device for a local route.
	NextHops []NextHop
}

// NextHop is one way a route sends packets: a gateway, an interface, or
// both. A gateway of an IPv4 route may be an IPv6 address (`via inet6`).
type NextHop struct {
	Gateway netip.Addr // the zero Addr for an on-link next hop
	Dev     string     // interface name, at most 15 bytes; "" when not given
	Weight  int        // 1..256 among several next hops; 0 means 1
}

// The tables with names, as iproute2 numbers them.
const (
	TableDefault = 253
	TableMain    = 254
	TableLocal   = 255
)

// RouteType is a route's type, numbered as Linux's RTN_ constants.
type RouteType uint8

// The route types rtm keeps.
const (
	Unicast     RouteType = 1
	Local       RouteType = 2
	Blackhole   RouteType = 6
	Unreachable RouteType = 7
	Prohibit    RouteType = 8
	Throw       RouteType = 9
)

func (t RouteType) String() string { return route.Type(t).String() }

// Protocol says who installed a route, numbered as Linux's RTPROT_
// constants (iproute2's rt_protos).
type Protocol uint8

// Some protocols; any number 1..255 is allowed.
const (
	ProtoKernel Protocol = 2
	ProtoBoot   Protocol = 3
	ProtoStatic Protocol = 4
	ProtoDHCP   Protocol = 16
	ProtoBGP    Protocol = 186
)

func (p Protocol) String() string { return route.Proto(p).String() }

// String returns the route as `ip route show` prints it, on one line.
func (r Route) String() string {
	ir, err := r.internal()
	if err != nil {
		return r.Dst.String() + " (invalid: " + err.Error() + ")"
	}
	return string(ir.AppendLine(nil))
}

// internal converts r, filling in defaults, and validates it.
func (r Route) internal() (route.Route, error) {
	ir := route.Route{Table: r.Table, Dst: r.Dst, Attrs: route.Attrs{
		Type: route.Type(r.Type), Proto: route.Proto(r.Protocol), Metric: r.Metric, Src: r.Src}}
	if ir.Table == 0 {
		ir.Table = route.TableMain
	}
	if ir.Type == 0 {
		ir.Type = route.Unicast
	}
	if ir.Proto == 0 {
		ir.Proto = route.ProtoStatic
	}
	if len(r.NextHops) > 0 {
		ir.Hops = make([]route.NextHop, len(r.NextHops))
		for i, h := range r.NextHops {
			w := h.Weight
			if w == 0 {
				w = 1
			}
			if w < 1 || w > 256 {
				return route.Route{}, &route.FieldError{Field: "weight", Value: strconv.Itoa(h.Weight), Msg: "not in 1..256"}
			}
			ir.Hops[i] = route.NextHop{Gateway: h.Gateway, Dev: h.Dev, Weight: uint16(w)}
		}
	}
	if err := ir.Validate(); err != nil {
		return route.Route{}, err
	}
	return ir, nil
}

// publicRoute converts a route from rtm's table.
func publicRoute(r *route.Route) Route {
	p := Route{Table: r.Table, Dst: r.Dst, Type: RouteType(r.Type), Protocol: Protocol(r.Proto),
		Metric: r.Metric, Src: r.Src}
	if len(r.Hops) > 0 {
		p.NextHops = make([]NextHop, len(r.Hops))
		for i, h := range r.Hops {
			p.NextHops[i] = NextHop{Gateway: h.Gateway, Dev: h.Dev, Weight: int(h.Weight)}
		}
	}
	return p
}

// PrefixMode says how a Selector's Prefix picks routes.
type PrefixMode uint8

// The prefix modes, as `ip route show` has them.
const (
	AnyPrefix PrefixMode = 0 // no prefix: every route
	Exact     PrefixMode = 1 // that prefix only
	Root      PrefixMode = 2 // the prefix and the prefixes inside it
	Match     PrefixMode = 3 // the prefix and the prefixes that contain it
)

// Selector picks routes as the selectors of `ip route show` and `ip route
// flush` do. Every field that is set must match; the zero Selector picks
// every route of every table.
type Selector struct {
	Table     uint32 // 0: every table
	Mode      PrefixMode
	Prefix    netip.Prefix // with Mode other than AnyPrefix
	Dev       string       // some next hop has this interface
	Via       netip.Addr   // some next hop has this gateway
	Protocol  Protocol
	HasProto  bool // Protocol is set (0 is a valid protocol number)
	Type      RouteType
	Metric    uint32
	HasMetric bool // Metric is set
}

func (s Selector) internal() (route.Selector, error) {
	is := route.Selector{Table: s.Table, Mode: route.PrefixMode(s.Mode), Prefix: s.Prefix, Dev: s.Dev,
		Via: s.Via, Proto: route.Proto(s.Protocol), HasProto: s.HasProto, Type: route.Type(s.Type),
		Metric: s.Metric, HasMetric: s.HasMetric}
	return is, is.Validate()
}

// Select reports whether s picks r.
func (s Selector) Select(r Route) bool {
	is, err := s.internal()
	if err != nil {
		return false
	}
	ir, err := r.internal()
	if err != nil {
		return false
	}
	return is.Select(&ir)
}

// Errors that rtmd's replies carry, for errors.Is: the error returned is a
// *ServerError with rtmd's message.
var (
	// ErrExists: an add of a route or MAC entry that exists.
	ErrExists = errors.New("exists")
	// ErrNotFound: a change, delete or lookup of a route or MAC entry
	// that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermission: this client may not do what it asked (it may not
	// change the tables, or asked over TCP for what TCP does not serve).
	ErrPermission = errors.New("permission denied")
)

// ParseRoute parses a route as `ip route add` takes it and `ip route show`
// prints it, for example "10.0.0.0/8 via 192.0.2.1 dev eth0 metric 100".
// Words that `ip route show` prints and rtm does not keep (scope, linkdown,
// onlink, ...) are ignored; an unknown word is an error that names it.
func ParseRoute(s string) (Route, error) {
	r, _, err := route.ParseLine(s)
	if err != nil {
		return Route{}, err
	}
	return publicRoute(&r), nil
}
