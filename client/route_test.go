package client

import (
	"errors"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
)

// TestNumbersMatch: the library's constants are the numbers the route
// package, and so the protocol, uses.
func TestNumbersMatch(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"TableDefault", TableDefault, route.TableDefault}, {"TableMain", TableMain, route.TableMain},
		{"TableLocal", TableLocal, route.TableLocal},
		{"Unicast", int(Unicast), int(route.Unicast)}, {"Local", int(Local), int(route.Local)},
		{"Blackhole", int(Blackhole), int(route.Blackhole)}, {"Unreachable", int(Unreachable), int(route.Unreachable)},
		{"Prohibit", int(Prohibit), int(route.Prohibit)}, {"Throw", int(Throw), int(route.Throw)},
		{"ProtoKernel", int(ProtoKernel), int(route.ProtoKernel)}, {"ProtoBoot", int(ProtoBoot), int(route.ProtoBoot)},
		{"ProtoStatic", int(ProtoStatic), int(route.ProtoStatic)}, {"ProtoDHCP", int(ProtoDHCP), int(route.ProtoDHCP)},
		{"ProtoBGP", int(ProtoBGP), int(route.ProtoBGP)},
		{"AnyPrefix", int(AnyPrefix), int(route.AnyPrefix)}, {"Exact", int(Exact), int(route.Exact)},
		{"Root", int(Root), int(route.Root)}, {"Match", int(Match), int(route.Match)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !errors.Is(ErrNoMAC, ErrNotFound) {
		t.Error("ErrNoMAC is not ErrNotFound")
	}
}
