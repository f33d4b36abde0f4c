package route

import (
	"net/netip"
	"strconv"
)

// ParseOptions says how to read a route whose words leave something open.
// The zero value reads as `ip route` without -4 or -6.
type ParseOptions struct {
	// Family is 4 or 6 as ip's -4 and -6: "default" means 0.0.0.0/0 or
	// ::/0, and a destination of the other family is refused. With 0,
	// "default" takes the family of the first gateway (an IPv4 one when
	// written "via inet6", which only an IPv4 route needs) or of src, and
	// is IPv4 when there is neither.
	Family int
}

// ParseLine parses a route as `ip route add` takes its arguments and as `ip
// route show` prints it (see ParseOptions.ParseLine).
func ParseLine(line string) (r Route, ignored int, err error) {
	return ParseOptions{}.ParseLine(line)
}

// ParseFields parses the words of a route as ParseLine parses a line.
func ParseFields(words []string) (r Route, ignored int, err error) {
	return ParseOptions{}.ParseFields(words)
}

// ParseLine parses a route as `ip route add` takes its arguments and as `ip
// route show` prints it: an optional type word, the destination ("default",
// a prefix, or an address for a host route) and keywords in any order:
//
//	via [inet|inet6] ADDR, dev|oif NAME, table T, proto|protocol P,
//	metric|priority|preference N, src ADDR,
//	nexthop [via [inet|inet6] ADDR] [dev NAME] [weight W] ... (last)
//
// Words are separated by any white space, newlines included, so the lines
// of a multipath route as `ip route show` prints them parse as one (see
// NextLine). What is not given is as in Simple: table main, type unicast,
// proto static, weight 1. (ip route add puts a local route in the local
// table unless told, but ip route show prints one in main without a table:
// rtm reads what ip prints.)
//
// Words that ip prints or takes but rtm does not keep (scope, linkdown,
// onlink, expires, pref, mtu, ...) are skipped with their values; ignored
// counts them, and the "dev lo" ip prints for an IPv6 route without next
// hops (blackhole, ...). Any other word is an error, and every error is a
// *FieldError that names the field and the bad value. The route passed
// Validate.
//
// Strings in r (the device names) share memory with line.
func (o ParseOptions) ParseLine(line string) (r Route, ignored int, err error) {
	return o.parse(line, nil, false, nil)
}

// ParseFields parses the words of a route as ParseLine parses a line.
func (o ParseOptions) ParseFields(words []string) (r Route, ignored int, err error) {
	return o.parse("", words, true, nil)
}

// ParseLineInto parses line as ParseLine does into *r, reusing the array of
// r.Hops for the next hops, so that a loop that parses many routes into
// one Route allocates nothing for the common lines. The caller must not
// keep r.Hops of an earlier call, nor let r.Hops share an array with
// anyone else. On an error *r is the zero Route but for r.Hops' array.
func (o ParseOptions) ParseLineInto(r *Route, line string) (ignored int, err error) {
	hops := r.Hops[:0]
	if o.Family != 6 && parseLineV4(r, hops, line) {
		return 0, nil
	}
	*r, ignored, err = o.parse(line, nil, false, hops)
	return ignored, err
}

// parse parses line, or words if useWords, with hops as the array for the
// next hops.
func (o ParseOptions) parse(line string, words []string, useWords bool, hops []NextHop) (Route, int, error) {
	var r Route
	if !useWords && o.Family != 6 && parseLineV4(&r, hops, line) {
		return r, 0, nil
	}
	p := parser{opt: o, line: line, w: words}
	p.r.Hops = hops
	if err := p.parse(); err != nil {
		return Route{Attrs: Attrs{Hops: hops[:0]}}, 0, err
	}
	return p.r, p.ignored, nil
}

// parser reads the words of one route, from line or else from w.
type parser struct {
	opt     ParseOptions
	r       Route
	line    string
	w       []string
	ignored int
}

// next returns the next word, or "" at the end.
func (p *parser) next() string {
	if p.line == "" {
		if len(p.w) == 0 {
			return ""
		}
		s := p.w[0]
		p.w = p.w[1:]
		return s
	}
	s := p.line
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	p.line = s[j:]
	return s[i:j]
}

// value returns the value after keyword kw, naming field in the error when
// there is none.
func (p *parser) value(field, kw string) (string, error) {
	v := p.next()
	if v == "" {
		return "", &FieldError{field, kw, "needs a value"}
	}
	return v, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Bits of what a route's words gave, to refuse a keyword given twice.
const (
	gaveDst = 1 << iota
	gaveVia
	gaveDev
	gaveTable
	gaveProto
	gaveMetric
	gaveSrc
	gaveWeight
)

// ignoredWords are the words ip prints or takes that rtm does not keep,
// with the number of values each takes.
var ignoredWords = map[string]int{
	// flags of routes and next hops
	"linkdown": 0, "onlink": 0, "dead": 0, "pervasive": 0, "offload": 0, "trap": 0,
	"rt_offload": 0, "rt_trap": 0, "rt_offload_failed": 0, "notify": 0, "cache": 0,
	"unresolved": 0,
	// attributes
	"scope": 1, "expires": 1, "pref": 1, "realm": 1, "realms": 1, "tos": 1, "dsfield": 1,
	"error": 1, "uid": 1, "from": 1, "age": 1, "ttl-propagate": 1, "nhid": 1,
	// metrics, which may be locked: "mtu lock 1400"
	"mtu": -1, "advmss": -1, "hoplimit": -1, "initcwnd": -1, "initrwnd": -1, "rtt": -1,
	"rttvar": -1, "rto_min": -1, "reordering": -1, "window": -1, "cwnd": -1, "ssthresh": -1,
	"features": -1, "quickack": -1, "congctl": -1, "fastopen_no_cookie": -1,
}

// skipIgnored skips word w and its values if it is one that rtm ignores,
// and reports whether it was.
func (p *parser) skipIgnored(w string) (bool, error) {
	n, ok := ignoredWords[w]
	if !ok {
		return false, nil
	}
	p.ignored++
	if n == 0 {
		return true, nil
	}
	v, err := p.value(w, w)
	if err == nil && n < 0 && v == "lock" {
		_, err = p.value(w, w+" lock")
	}
	return true, err
}

func (p *parser) parse() error {
	r := &p.r
	r.Table, r.Dst = TableMain, netip.Prefix{}
	r.Attrs = Attrs{Type: Unicast, Proto: ProtoStatic, Hops: r.Hops[:0]}
	var (
		gave      uint
		isDefault bool
		hop       = NextHop{Weight: 1}
		famHint   int // family of the first gateway, for "default"
		srcFam    int // family of src, for "default" without a gateway
	)
	for {
		w := p.next()
		if w == "" {
			break
		}
		var err error
		switch w {
		case "via":
			if err = p.once(&gave, gaveVia, "gateway"); err != nil {
				return err
			}
			var fam int
			hop.Gateway, fam, err = p.gateway()
			if famHint == 0 {
				famHint = fam
			}
		case "dev", "oif":
			if err = p.once(&gave, gaveDev, "dev"); err != nil {
				return err
			}
			hop.Dev, err = p.dev(w)
		case "table":
			if err = p.once(&gave, gaveTable, "table"); err == nil {
				var v string
				if v, err = p.value("table", w); err == nil {
					r.Table, err = ParseTable(v)
				}
			}
		case "proto", "protocol":
			if err = p.once(&gave, gaveProto, "proto"); err == nil {
				var v string
				if v, err = p.value("proto", w); err == nil {
					r.Proto, err = ParseProto(v)
				}
			}
		case "metric", "priority", "preference":
			if err = p.once(&gave, gaveMetric, "metric"); err == nil {
				var v string
				if v, err = p.value("metric", w); err == nil {
					r.Metric, err = parseMetric(v)
				}
			}
		case "src":
			if err = p.once(&gave, gaveSrc, "src"); err == nil {
				var v string
				if v, err = p.value("src", w); err == nil {
					r.Src, err = ParseAddr("src", v)
					if err == nil {
						srcFam = famOf(r.Src)
					}
				}
			}
		case "weight":
			return &FieldError{"weight", w, "only a next hop of a multipath route (nexthop ... weight W) has a weight"}
		case "nexthop":
			if gave&(gaveVia|gaveDev) != 0 {
				return &FieldError{"nexthop", w, "via or dev given outside nexthop as well"}
			}
			if famHint, err = p.nexthops(famHint); err != nil {
				return err
			}
		default:
			var ok bool
			if ok, err = p.skipIgnored(w); ok || err != nil {
				break
			}
			if gave&gaveDst != 0 {
				return &FieldError{"keyword", w, "unknown keyword"}
			}
			gave |= gaveDst
			isDefault, err = p.dst(w)
		}
		if err != nil {
			return err
		}
	}
	if gave&gaveDst == 0 {
		return &FieldError{"dst", "", "missing: give a prefix, an address or default"}
	}
	if isDefault {
		fam := p.opt.Family
		if fam == 0 {
			fam = famHint
		}
		if fam == 0 {
			fam = srcFam
		}
		if fam == 6 {
			r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	if gave&(gaveVia|gaveDev) != 0 {
		// ip prints "dev lo" for IPv6 blackhole, unreachable, prohibit
		// and throw routes; the kernel puts it there, not the user.
		if !r.Type.HasHops() && hop == (NextHop{Dev: "lo", Weight: 1}) {
			p.ignored++
		} else {
			r.Hops = append(r.Hops, hop)
		}
	}
	return r.Validate()
}

// once refuses a keyword given twice.
func (p *parser) once(gave *uint, bit uint, field string) error {
	if *gave&bit != 0 {
		v := p.next()
		return &FieldError{field, v, "given twice"}
	}
	*gave |= bit
	return nil
}

// dst reads the destination w, after "to" and a type word, and reports
// whether it is "default".
func (p *parser) dst(w string) (bool, error) {
	r := &p.r
	if w == "to" {
		v, err := p.value("dst", w)
		if err != nil {
			return false, err
		}
		w = v
	}
	if len(w) > 0 && (w[0] < '0' || w[0] > '9') && w != "default" && !isHexAddr(w) {
		t, err := ParseType(w)
		if err != nil {
			if !knownType(w) {
				return false, &FieldError{"keyword", w, "unknown keyword"}
			}
			return false, &FieldError{"type", w, "not a route type rtm keeps (unicast, local, blackhole, unreachable, prohibit, throw)"}
		}
		r.Type = t
		if w, err = p.value("dst", w); err != nil {
			return false, err
		}
	}
	if w == "default" {
		return true, nil
	}
	d, err := ParsePrefix(w)
	if err != nil {
		return false, err
	}
	switch f := famOf(d.Addr()); {
	case p.opt.Family == 4 && f != 4, p.opt.Family == 6 && f != 6:
		return false, &FieldError{"dst", w, "not an IPv" + strconv.Itoa(p.opt.Family) + " prefix"}
	}
	r.Dst = d
	return false, nil
}

// isHexAddr reports whether w looks like an IPv6 address that begins with a
// letter ("fe80::/64"), not a type word.
func isHexAddr(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] == ':' {
			return true
		}
	}
	return false
}

// knownType reports whether w is a route type of ip's that rtm does not
// keep, for a clearer error.
func knownType(w string) bool {
	switch w {
	case "broadcast", "anycast", "multicast", "nat", "xresolve":
		return true
	}
	return false
}

// gateway reads "[inet|inet6] ADDR" after via and returns the address and
// the family it implies for the route (4 for "inet6", which only an IPv4
// route needs).
func (p *parser) gateway() (netip.Addr, int, error) {
	v, err := p.value("gateway", "via")
	if err != nil {
		return netip.Addr{}, 0, err
	}
	fam := 0
	switch v {
	case "inet", "inet6":
		fam = 4
		if v == "inet6" {
			fam = 6
		}
		if v, err = p.value("gateway", "via "+v); err != nil {
			return netip.Addr{}, 0, err
		}
	}
	a, err := ParseAddr("gateway", v)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	switch {
	case fam == 0:
		return a, famOf(a), nil
	case fam != famOf(a):
		return netip.Addr{}, 0, &FieldError{"gateway", v, "not an IPv" + strconv.Itoa(fam) + " address"}
	}
	return a, 4, nil
}

func (p *parser) dev(kw string) (string, error) {
	v, err := p.value("dev", kw)
	if err != nil {
		return "", err
	}
	if err := CheckDev(v); err != nil {
		return "", err
	}
	return v, nil
}

// nexthops reads the next hops after the first "nexthop", to the end of the
// words, and returns the family hint updated by their gateways.
func (p *parser) nexthops(famHint int) (int, error) {
	r := &p.r
	hop, gave := NextHop{Weight: 1}, uint(0)
	end := func() error {
		if gave&(gaveVia|gaveDev) == 0 {
			return &FieldError{"nexthop", "nexthop", "needs via or dev"}
		}
		if len(r.Hops) == MaxHops {
			return &FieldError{"nexthop", strconv.Itoa(MaxHops + 1), "more than " + strconv.Itoa(MaxHops) + " next hops"}
		}
		r.Hops = append(r.Hops, hop)
		hop, gave = NextHop{Weight: 1}, 0
		return nil
	}
	for {
		w := p.next()
		var err error
		switch w {
		case "":
			return famHint, end()
		case "nexthop":
			err = end()
		case "via":
			if err = p.once(&gave, gaveVia, "gateway"); err == nil {
				var fam int
				hop.Gateway, fam, err = p.gateway()
				if famHint == 0 {
					famHint = fam
				}
			}
		case "dev", "oif":
			if err = p.once(&gave, gaveDev, "dev"); err == nil {
				hop.Dev, err = p.dev(w)
			}
		case "weight":
			if err = p.once(&gave, gaveWeight, "weight"); err == nil {
				var v string
				if v, err = p.value("weight", w); err == nil {
					n, perr := strconv.ParseUint(v, 10, 16)
					if perr != nil || n < 1 || n > 256 {
						err = &FieldError{"weight", v, "not in 1..256"}
					}
					hop.Weight = uint16(n)
				}
			}
		default:
			var ok bool
			if ok, err = p.skipIgnored(w); !ok && err == nil {
				err = &FieldError{"keyword", w, "unknown keyword in a nexthop (via, dev, weight)"}
			}
		}
		if err != nil {
			return 0, err
		}
	}
}

func parseMetric(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, &FieldError{"metric", s, "not a number 0..4294967295"}
	}
	return uint32(n), nil
}

func famOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
