package server

import (
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/wire"
)

func TestParseMessage(t *testing.T) {
	msg := "route add 10.0.0.0/8 via 10.1.1.1 dev eth0\n" +
		"route frob\n" +
		"\n# a comment\n" +
		"mac replace 02:00:00:00:00:01 10.0.0.1\n" +
		"route show\n" +
		"route add 10.1.0.0/16 via 10.1.1.1 dev " + strings.Repeat("x", 5000) + "\n" +
		"route del 10.\xff.0.0/16\n" +
		"route flush table 7 proto bgp\n" +
		"flush\n" +
		"f all\n" +
		"flush all"
	reqs, errs := parseMessage([]byte(msg))
	var kinds []byte
	for _, r := range reqs {
		kinds = append(kinds, r.kind)
	}
	if string(kinds) != string([]byte{wire.KAdd, wire.KMACReplace, wire.KRouteFlush, wire.KFlush}) {
		t.Errorf("kinds %v", kinds)
	}
	want := []string{`line 2: unknown route command "frob"`, "line 6: route show is not a queue command", "line 7: line of", "line 8: not UTF-8",
		`line 10: flush empties both tables`, `line 11: command "f": flush is never abbreviated`}
	if len(errs) != len(want) {
		t.Fatalf("errors %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %v, want %q...", i, errs[i], w)
		}
	}
}

// FuzzQueueMessage feeds arbitrary messages to the queue's parser: it must
// not panic, and every command it accepts carries valid values.
func FuzzQueueMessage(f *testing.F) {
	f.Add([]byte("route add 10.0.0.0/8 via 10.1.1.1 dev eth0\nflush all\nroute flush root 10.0.0.0/8\n"))
	f.Add([]byte("mac add 02:00:00:00:00:01 ::1\nmac del 02:00:00:00:00:01"))
	f.Add([]byte("route del ::/0\x00\xff"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		reqs, _ := parseMessage(msg)
		for _, r := range reqs {
			switch r.kind {
			case wire.KAdd, wire.KChange, wire.KReplace:
				if err := r.route.Validate(); err != nil {
					t.Fatalf("accepted an invalid route %v: %v", r.route, err)
				}
			case wire.KMACAdd, wire.KMACChange, wire.KMACReplace:
				if !r.ip.IsValid() || r.ip.Is4In6() || r.ip.Zone() != "" {
					t.Fatalf("accepted an invalid MAC value %v", r.ip)
				}
			}
		}
	})
}
