package route

import "net/netip"

// PrefixMode says how a Selector's prefix picks routes, as in `ip route
// show`.
type PrefixMode uint8

// The prefix modes.
const (
	AnyPrefix PrefixMode = iota // no prefix given: every route
	Exact                       // PREFIX or exact PREFIX: that prefix only
	Root                        // root PREFIX: PREFIX and the prefixes inside it
	Match                       // match PREFIX: PREFIX and the prefixes that contain it
)

// Selector picks routes as the selectors of `ip route show` and `ip route
// flush` do. The zero value picks every route of every table.
type Selector struct {
	Table     uint32 // 0: every table
	Mode      PrefixMode
	Prefix    netip.Prefix // Mode != AnyPrefix
	Dev       string       // "": any; else some next hop has this device
	Via       netip.Addr   // invalid: any; else some next hop has this gateway
	Proto     Proto
	HasProto  bool
	Type      Type // 0: any
	Metric    uint32
	HasMetric bool
}

// Select reports whether s picks r.
func (s *Selector) Select(r *Route) bool {
	if s.Table != 0 && r.Table != s.Table {
		return false
	}
	switch s.Mode {
	case Exact:
		if r.Dst != s.Prefix {
			return false
		}
	case Root:
		if !s.Prefix.Overlaps(r.Dst) || r.Dst.Bits() < s.Prefix.Bits() {
			return false
		}
	case Match:
		if !r.Dst.Overlaps(s.Prefix) || r.Dst.Bits() > s.Prefix.Bits() {
			return false
		}
	}
	if s.HasProto && r.Proto != s.Proto || s.Type != 0 && r.Type != s.Type ||
		s.HasMetric && r.Metric != s.Metric {
		return false
	}
	if s.Dev == "" && !s.Via.IsValid() {
		return true
	}
	for _, h := range r.Hops {
		if (s.Dev == "" || h.Dev == s.Dev) && (!s.Via.IsValid() || h.Gateway == s.Via) {
			return true
		}
	}
	return false
}

// Validate reports whether s is well formed.
func (s *Selector) Validate() error {
	if s.Mode > Match {
		return &FieldError{"selector", s.Prefix.String(), "unknown prefix mode"}
	}
	if s.Mode != AnyPrefix {
		if err := checkPrefix(s.Prefix); err != nil {
			return &FieldError{"prefix", s.Prefix.String(), err.Error()}
		}
		if s.Prefix != s.Prefix.Masked() {
			return &FieldError{"prefix", s.Prefix.String(), "host bits set"}
		}
	}
	if s.Dev != "" {
		if err := CheckDev(s.Dev); err != nil {
			return err
		}
	}
	if s.Via.IsValid() {
		if err := checkAddr(s.Via); err != nil {
			return &FieldError{"via", s.Via.String(), err.Error()}
		}
	}
	if s.Type != 0 && !s.Type.Valid() {
		return &FieldError{"type", s.Type.String(), "not a route type rtm keeps"}
	}
	return nil
}
