package route

import (
	"fmt"
	"strconv"
)

// Table numbers with names, as in iproute2's rt_tables.
const (
	TableDefault = 253
	TableMain    = 254
	TableLocal   = 255
)

var tableNames = map[uint32]string{TableDefault: "default", TableMain: "main", TableLocal: "local"}

// TableName returns the name `ip` prints for table n: a name from the
// built-in list, else the number.
func TableName(n uint32) string {
	if s, ok := tableNames[n]; ok {
		return s
	}
	return strconv.FormatUint(uint64(n), 10)
}

// ParseTable parses a table name or a number 1..2^32-1.
func ParseTable(s string) (uint32, error) {
	switch s {
	case "main":
		return TableMain, nil
	case "local":
		return TableLocal, nil
	case "default":
		return TableDefault, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, &FieldError{"table", s, "not a table name (main, local, default) or a number 1..4294967295"}
	}
	return uint32(n), nil
}

// Type is a route's type, numbered as the kernel's RTN_ constants.
type Type uint8

// The route types rtm keeps.
const (
	Unicast     Type = 1
	Local       Type = 2
	Blackhole   Type = 6
	Unreachable Type = 7
	Prohibit    Type = 8
	Throw       Type = 9
)

var typeNames = [...]string{Unicast: "unicast", Local: "local", Blackhole: "blackhole",
	Unreachable: "unreachable", Prohibit: "prohibit", Throw: "throw"}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Valid reports whether t is one of the types rtm keeps.
func (t Type) Valid() bool { return int(t) < len(typeNames) && typeNames[t] != "" }

// HasHops reports whether routes of type t have next hops: unicast routes
// have one or more, local routes may name a device, the others have none.
func (t Type) HasHops() bool { return t == Unicast || t == Local }

// ParseType parses a route type name.
func ParseType(s string) (Type, error) {
	for t, name := range typeNames {
		if name != "" && s == name {
			return Type(t), nil
		}
	}
	return 0, &FieldError{"type", s, "not a route type (unicast, local, blackhole, unreachable, prohibit, throw)"}
}

// Proto says who installed a route, numbered as the kernel's RTPROT_
// constants and iproute2's rt_protos.
type Proto uint8

// Route protocols with names.
const (
	ProtoRedirect Proto = 1
	ProtoKernel   Proto = 2
	ProtoBoot     Proto = 3
	ProtoStatic   Proto = 4
	ProtoDHCP     Proto = 16
	ProtoBGP      Proto = 186
)

var protoNames = map[Proto]string{
	1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
	11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
	18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
	189: "rip", 192: "eigrp",
}

// protoByName is protoNames the other way, for a parse in one look-up.
var protoByName = func() map[string]Proto {
	m := make(map[string]Proto, len(protoNames))
	for p, name := range protoNames {
		m[name] = p
	}
	return m
}()

func (p Proto) String() string {
	if s, ok := protoNames[p]; ok {
		return s
	}
	return strconv.Itoa(int(p))
}

// ParseProto parses a protocol name or a number 0..255.
func ParseProto(s string) (Proto, error) {
	if p, ok := protoByName[s]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, &FieldError{"proto", s, "not a protocol name (static, boot, kernel, bgp, ospf, ...) or a number 0..255"}
	}
	return Proto(n), nil
}
