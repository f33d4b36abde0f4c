package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/command"
)

func TestParseRoutesErrorLine(t *testing.T) {
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "10.%d.%d.0/24 via 192.0.2.1 dev eth0\n", i>>8&255, i&255)
		if i == 70000 {
			b.WriteString("# comment\n\n10.0.0.0/99 via 192.0.2.1 dev eth0\n")
		}
	}
	var ig ignoredWords
	_, err := parseRoutes(b.String(), &ig)
	if err == nil || !strings.HasPrefix(err.Error(), "70004: ") || !strings.Contains(err.Error(), "10.0.0.0/99") {
		t.Errorf("parseRoutes error = %v, want one at line 70004 naming 10.0.0.0/99", err)
	}
}

// TestParseRoutesIPShow reads what ip route show prints: words rtm does not
// keep, and multipath routes over several lines, also where the input is
// cut into pieces parsed in parallel.
func TestParseRoutesIPShow(t *testing.T) {
	const show = `default via 192.0.2.1 dev eth0 proto dhcp src 192.0.2.9 metric 100 
10.1.0.0/16 dev eth1 proto kernel scope link src 10.1.0.1 linkdown 
10.2.0.0/16 proto bgp metric 20 
	nexthop via 192.0.2.1 dev eth0 weight 1 
	nexthop via 192.0.2.2 dev eth0 weight 2 
blackhole 10.3.0.0/16 
`
	var b strings.Builder
	for range 30000 { // over 1 MiB: cut into pieces
		b.WriteString(show)
	}
	var ig ignoredWords
	batch, err := parseRoutes(b.String(), &ig)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := batch.Len(), 4*30000; got != want {
		t.Errorf("parseRoutes read %d routes, want %d", got, want)
	}
	if got, want := ig.n, 2*30000; got != want {
		t.Errorf("ignored %d words, want %d", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(ig.names)), []string{"linkdown", "scope"}; !slices.Equal(got, want) {
		t.Errorf("ignored words %v, want %v", got, want)
	}

	// A bad line after a multipath route is counted in lines, not routes.
	_, err = parseRoutes(show+"10.4.0.0/16 via 192.0.2.1 frob\n", &ig)
	if err == nil || !strings.HasPrefix(err.Error(), "7: ") || !strings.Contains(err.Error(), "frob") {
		t.Errorf("parseRoutes error = %v, want one at line 7 naming frob", err)
	}
}

func TestIgnoredWord(t *testing.T) {
	for w, want := range map[string]bool{"scope": true, "linkdown": true, "onlink": true, "mtu": true, "pref": true,
		"link": false, "via": false, "metric": false, "dev": false, "frob": false, "1400": false, "": false} {
		if got := command.IgnoredWord(w); got != want {
			t.Errorf("IgnoredWord(%q) = %v, want %v", w, got, want)
		}
	}
}
