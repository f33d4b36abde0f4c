package command_test

import (
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/command"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		verb command.Verb
		err  string
	}{
		{"route add 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteAdd, ""},
		{"r a 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteAdd, ""},
		{"route c 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteChange, ""},
		{"route rep 10.0.0.0/8 via 1.1.1.1 dev e", command.RouteReplace, ""},
		{"route del 10.0.0.0/8", command.RouteDel, ""},
		{"route delete 10.0.0.0/8", command.RouteDel, ""},
		{"route", command.RouteShow, ""},
		{"route show -j", command.RouteShow, ""},
		{"route list", command.RouteShow, ""},
		{"route get 10.1.1.1", command.RouteGet, ""},
		{"route load -", command.RouteLoad, ""},
		{"monitor -j --follow", command.Monitor, ""},
		{"client", command.Client, ""},
		{"", 0, "missing command"},
		{"frob", 0, `unknown command "frob"`},
		{"route d 10.0.0.0/8", 0, `ambiguous route command "d"`},
		{"route del", 0, "missing PREFIX"},
		{"route del 10.0.0.0/8 via 1.1.1.1", 0, `unexpected argument "via"`},
		{"route show -x", 0, `unexpected argument "-x"`},
		{"route get", 0, "missing ADDR"},
		{"route get 10.0.0.0/8", 0, `invalid address "10.0.0.0/8"`},
		{"route load a b", 0, "want one FILE"},
		{"monitor now", 0, `unknown argument "now"`},
		{"client x", 0, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		c, err := command.ParseLine(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %+v, %v; want error containing %q", tt.in, c, err, tt.err)
			}
			continue
		}
		if err != nil || c.Verb != tt.verb {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, c.Verb, err, tt.verb)
		}
	}
}

// FuzzParse checks that no command line crashes the parser, and that a
// parsed mutation carries a valid route.
func FuzzParse(f *testing.F) {
	f.Add("route add 10.0.0.0/8 via 1.1.1.1 dev e")
	f.Add("route del ::/0")
	f.Add("monitor -j")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := command.ParseLine(line)
		if err != nil {
			return
		}
		switch c.Verb {
		case command.RouteAdd, command.RouteChange, command.RouteReplace:
			if err := c.Route.Validate(); err != nil {
				t.Fatalf("Parse(%q) gave invalid route %v: %v", line, c.Route, err)
			}
		}
	})
}
