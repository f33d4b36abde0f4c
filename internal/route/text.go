package route

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// String returns the route as `rtm route show` prints it.
func (r Route) String() string {
	return string(r.AppendText(make([]byte, 0, 64)))
}

// AppendText appends the text form of r to b. (Placeholder: one next hop.)
func (r Route) AppendText(b []byte) []byte {
	if r.Type != Unicast {
		b = append(b, r.Type.String()...)
		b = append(b, ' ')
	}
	b = r.Dst.AppendTo(b)
	for _, h := range r.Hops {
		b = append(b, ' ')
		b = append(b, h.String()...)
	}
	return b
}

// ParseLine parses one line of `rtm route show` output. (Placeholder.)
func ParseLine(line string) (Route, error) {
	return ParseFields(strings.Fields(line))
}

// ParseFields parses the words of a route. (Placeholder: DST via GW dev OIF.)
func ParseFields(f []string) (Route, error) {
	if len(f) == 0 {
		return Route{}, errors.New("missing dst")
	}
	dst, err := ParsePrefix(f[0])
	if err != nil {
		return Route{}, err
	}
	r := Simple(dst, netip.Addr{}, "")
	rest := f[1:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			return Route{}, fmt.Errorf("%q needs a value", rest[0])
		}
		key, val := rest[0], rest[1]
		rest = rest[2:]
		switch key {
		case "via":
			gw, err := ParseAddr("gateway", val)
			if err != nil {
				return Route{}, err
			}
			r.Hops[0].Gateway = gw
		case "dev":
			if err := CheckDev(val); err != nil {
				return Route{}, err
			}
			r.Hops[0].Dev = val
		default:
			return Route{}, fmt.Errorf("unknown keyword %q", key)
		}
	}
	return r, r.Validate()
}
