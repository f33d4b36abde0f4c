package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// TestQueueTakesLongestRoute: every route the model allows fits a queue
// line, the longest too: 32 next hops through IPv6 gateways of 39
// characters and interfaces of 15 bytes, weight 256 (some 2.6 KB). The
// queue took lines of 1024 bytes, so rtmd refused such a route that
// rtm --via mq had reported sent.
func TestQueueTakesLongestRoute(t *testing.T) {
	var b strings.Builder
	b.WriteString("route add unicast 10.0.0.0/8 table 4294967295 proto 255 metric 4294967295 src 255.255.255.255")
	for i := range route.MaxHops {
		fmt.Fprintf(&b, " nexthop via ffff:ffff:ffff:ffff:ffff:ffff:ffff:%04x dev eth%012d weight 256", 0xff00+i, i)
	}
	line := b.String()
	reqs, errs := parseMessage([]byte(line))
	if len(errs) != 0 || len(reqs) != 1 || reqs[0].kind != wire.KAdd {
		t.Fatalf("parseMessage(a line of %d bytes) = %d requests, errors %v; want one add", len(line), len(reqs), errs)
	}
	if len(line) > queueMsgSize {
		t.Fatalf("the longest route is %d bytes, more than a queue message (%d)", len(line), queueMsgSize)
	}
}
