package route

import (
	"net/netip"
	"strconv"
)

// ParseSelector parses the selector words of `ip route show` and `ip route
// flush`:
//
//	[[to] PREFIX | [to] root P | [to] match A | [to] exact P]
//	[table N|all] [dev|oif X] [via [inet|inet6] G] [proto P] [type T]
//	[metric|priority|preference M]
//
// in any order. A bare PREFIX is exact, as in ip; an address means a host
// prefix (/32 or /128), so "match A" picks the routes a lookup of A may
// choose from. "default" is 0.0.0.0/0, or ::/0 when family is 6; family 4
// or 6 refuses a prefix of the other family, as ip's -4 and -6. The table
// is main unless given; "table all" picks every table (Table 0). Errors
// are *FieldError naming the keyword or the bad value.
func ParseSelector(words []string, family int) (Selector, error) {
	s := Selector{Table: TableMain}
	var gave uint
	once := func(bit uint, field, v string) error {
		if gave&bit != 0 {
			return &FieldError{field, v, "given twice"}
		}
		gave |= bit
		return nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		value := func(field string) (string, error) {
			if i+1 >= len(words) {
				return "", &FieldError{field, w, "needs a value"}
			}
			i++
			return words[i], nil
		}
		var (
			v   string
			err error
		)
		switch w {
		case "table":
			if v, err = value("table"); err == nil {
				if err = once(gaveTable, "table", v); err == nil {
					if v == "all" {
						s.Table = 0
					} else {
						s.Table, err = ParseTable(v)
					}
				}
			}
		case "dev", "oif":
			if v, err = value("dev"); err == nil {
				if err = once(gaveDev, "dev", v); err == nil {
					err = CheckDev(v)
					s.Dev = v
				}
			}
		case "via":
			fam := ""
			if v, err = value("via"); err == nil && (v == "inet" || v == "inet6") {
				fam = v
				v, err = value("via")
			}
			if err == nil {
				if err = once(gaveVia, "via", v); err == nil {
					s.Via, err = ParseAddr("via", v)
				}
			}
			if err == nil && (fam == "inet" && !s.Via.Is4() || fam == "inet6" && !s.Via.Is6()) {
				err = &FieldError{"via", v, "not an " + fam + " address"}
			}
		case "proto", "protocol":
			if v, err = value("proto"); err == nil {
				if err = once(gaveProto, "proto", v); err == nil {
					s.Proto, err = ParseProto(v)
					s.HasProto = true
				}
			}
		case "type":
			if v, err = value("type"); err == nil {
				if err = once(gaveType, "type", v); err == nil {
					s.Type, err = ParseType(v)
				}
			}
		case "metric", "priority", "preference":
			if v, err = value("metric"); err == nil {
				if err = once(gaveMetric, "metric", v); err == nil {
					s.Metric, err = parseMetric(v)
					s.HasMetric = true
				}
			}
		default:
			mode := Exact
			if w == "to" {
				if w, err = value("prefix"); err != nil {
					break
				}
			}
			switch w {
			case "root", "match", "exact":
				mode = map[string]PrefixMode{"root": Root, "match": Match, "exact": Exact}[w]
				if w, err = value("prefix"); err != nil {
					return Selector{}, err
				}
			default:
				if !looksLikePrefix(w) {
					return Selector{}, &FieldError{"keyword", w, "unknown selector keyword"}
				}
			}
			if err = once(gaveDst, "prefix", w); err == nil {
				s.Mode = mode
				s.Prefix, err = selectorPrefix(w, family)
			}
		}
		if err != nil {
			return Selector{}, err
		}
	}
	return s, s.Validate()
}

// gaveType marks a type given in a selector.
const gaveType = gaveWeight << 1

// looksLikePrefix reports whether w may be a prefix rather than a keyword:
// it begins with a digit, or holds a colon, or is "default".
func looksLikePrefix(w string) bool {
	return w == "default" || w != "" && w[0] >= '0' && w[0] <= '9' || isHexAddr(w)
}

// selectorPrefix parses the prefix of a selector.
func selectorPrefix(w string, family int) (netip.Prefix, error) {
	if w == "default" {
		if family == 6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
	}
	p, err := ParsePrefix(w)
	if err != nil {
		e := err.(*FieldError)
		e.Field = "prefix"
		return netip.Prefix{}, e
	}
	if f := famOf(p.Addr()); family == 4 && f != 4 || family == 6 && f != 6 {
		return netip.Prefix{}, &FieldError{"prefix", w, "not an IPv" + strconv.Itoa(family) + " prefix"}
	}
	return p, nil
}
