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
	"strings"
)

// MaxDevLen is the longest interface name a route may carry, as in Linux
// (IFNAMSIZ less the terminating NUL).
const MaxDevLen = 31

// NextHop is where a route sends packets: a gateway and an outgoing interface.
type NextHop struct {
	Gateway netip.Addr
	Dev     string
}

// Route maps a destination prefix to a next hop.
type Route struct {
	Dst netip.Prefix
	NextHop
}

// String returns the route in the form that `rtm route show` prints:
// "DST via GATEWAY dev OIF".
func (r Route) String() string {
	return string(r.AppendText(make([]byte, 0, 64)))
}

// AppendText appends the text form of r to b.
func (r Route) AppendText(b []byte) []byte {
	b = r.Dst.AppendTo(b)
	b = append(b, " via "...)
	b = r.Gateway.AppendTo(b)
	b = append(b, " dev "...)
	return append(b, r.Dev...)
}

// FieldError reports a bad value in one named field of a route.
type FieldError struct {
	Field string // "dst", "gateway", "dev", ...
	Value string
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Msg)
}

// ParsePrefix parses a destination prefix. A bare address means a host route
// (/32 or /128). Host bits are cleared.
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
	return p.Masked(), nil
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

// CheckDev reports whether s is a valid interface name: 1 to 31 bytes of
// printable ASCII without spaces.
func CheckDev(s string) error {
	if len(s) == 0 {
		return &FieldError{"dev", s, "empty"}
	}
	if len(s) > MaxDevLen {
		return &FieldError{"dev", s, fmt.Sprintf("longer than %d bytes", MaxDevLen)}
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return &FieldError{"dev", s, fmt.Sprintf("byte %#02x at %d is not printable ASCII", c, i)}
		}
	}
	return nil
}

// Validate reports whether r is a well-formed, normalised route. Decoders of
// routes from other processes call it before anything touches a table.
func (r Route) Validate() error {
	if err := checkPrefix(r.Dst); err != nil {
		return &FieldError{"dst", r.Dst.String(), err.Error()}
	}
	if r.Dst != r.Dst.Masked() {
		return &FieldError{"dst", r.Dst.String(), "host bits set"}
	}
	if err := checkAddr(r.Gateway); err != nil {
		return &FieldError{"gateway", r.Gateway.String(), err.Error()}
	}
	if r.Gateway.Is4() != r.Dst.Addr().Is4() {
		return &FieldError{"gateway", r.Gateway.String(), "not the family of dst " + r.Dst.String()}
	}
	return CheckDev(r.Dev)
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

// ParseLine parses one line of `rtm route show` output: "DST via GATEWAY dev OIF".
// It does not allocate for a valid line, since `rtm route load` parses a
// million of them.
func ParseLine(line string) (Route, error) {
	if r, ok := parseLineV4(line); ok {
		return r, nil
	}
	return parseLine(line)
}

func parseLine(line string) (Route, error) {
	var buf [6]string
	f := buf[:0]
	for i := 0; i < len(line); {
		if isSpace(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		if len(f) == len(buf) {
			return ParseFields(strings.Fields(line))
		}
		f = append(f, line[i:j])
		i = j
	}
	return ParseFields(f)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// ParseFields parses the words "DST via GATEWAY dev OIF". The keywords may come
// in either order, as iproute2 allows.
func ParseFields(f []string) (Route, error) {
	if len(f) == 0 {
		return Route{}, errors.New("missing dst")
	}
	dst, err := ParsePrefix(f[0])
	if err != nil {
		return Route{}, err
	}
	r := Route{Dst: dst}
	var haveGW, haveDev bool
	rest := f[1:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			return Route{}, fmt.Errorf("%q needs a value", rest[0])
		}
		key, val := rest[0], rest[1]
		rest = rest[2:]
		switch key {
		case "via":
			if haveGW {
				return Route{}, errors.New(`"via" given twice`)
			}
			gw, err := ParseAddr("gateway", val)
			if err != nil {
				return Route{}, err
			}
			if gw.Is4() != dst.Addr().Is4() {
				return Route{}, &FieldError{"gateway", val, "not the family of dst " + dst.String()}
			}
			r.Gateway, haveGW = gw, true
		case "dev":
			if haveDev {
				return Route{}, errors.New(`"dev" given twice`)
			}
			if err := CheckDev(val); err != nil {
				return Route{}, err
			}
			r.Dev, haveDev = val, true
		default:
			return Route{}, fmt.Errorf("unknown keyword %q (want via or dev)", key)
		}
	}
	if !haveGW {
		return Route{}, errors.New(`missing "via GATEWAY"`)
	}
	if !haveDev {
		return Route{}, errors.New(`missing "dev OIF"`)
	}
	return r, nil
}

// Compare orders routes by family (IPv4 first), then prefix address, then
// prefix length: the order of `rtm route show`.
func Compare(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
