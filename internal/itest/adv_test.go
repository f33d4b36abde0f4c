package itest_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// TestProtoZeroNotSilentlyStatic: a route written with proto 0 is either
// kept as proto 0 or refused with an error that names proto; it is never
// stored as another protocol, whichever way it comes in.
func TestProtoZeroNotSilentlyStatic(t *testing.T) {
	d := startRtmd(t)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		dst         string
	}{
		{name: "add", args: []string{"route", "add", "10.50.0.0/16", "dev", "eth0", "proto", "0"}, dst: "10.50.0.0/16"},
		{name: "load", stdin: "10.51.0.0/16 dev eth0 proto 0\n", args: []string{"route", "load", "-"}, dst: "10.51.0.0/16"},
		{name: "batch", stdin: "route add 10.52.0.0/16 dev eth0 proto 0\n", args: []string{"-batch", "-"}, dst: "10.52.0.0/16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := d.rtm(tc.stdin, tc.args...)
			show := d.mustRtm("route", "show", tc.dst)
			switch {
			case code != 0 && !strings.Contains(errs, "proto"):
				t.Errorf("rtm %v: exit %d with %q, want an error that names proto", tc.args, code, errs)
			case code != 0 && show != "":
				t.Errorf("rtm %v failed, yet route show prints %q", tc.args, show)
			case code == 0 && !strings.Contains(show, "proto 0"):
				t.Errorf("rtm %v stored %q, want proto 0 kept", tc.args, show)
			}
		})
	}
}

// TestStagingBudgetCounts32Hops: a load in which every route has its own
// 32 next hops (IPv6 gateways, 15-byte interface names) holds what
// -max-staged charges it, within half again: its next hops, their key in
// the batch's interner, their names and the decoder's copy cost ~136 bytes
// a hop, not 48.
func TestStagingBudgetCounts32Hops(t *testing.T) {
	const budget = 20_000_000
	d := startRtmd(t, "-max-staged", strconv.Itoa(budget))
	base := d.status().HeapLive
	p := dialPeer(t, "unix", d.socket)
	seed := 0
	stageUntilRefused(t, p, func(uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 200)
		for range 200 {
			seed++
			a := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(seed >> 24), byte(seed >> 16), byte(seed >> 8), byte(seed)}
			r := route.Route{Table: route.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom16(a), 64),
				Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Hops: make([]route.NextHop, route.MaxHops)}}
			for j := range r.Hops {
				a[15] = byte(j + 1)
				r.Hops[j] = route.NextHop{Gateway: netip.AddrFrom16(a), Dev: fmt.Sprintf("e%08x%06d", seed, j), Weight: 2}
			}
			b = wire.AppendRoute(b, r)
		}
		return b
	})
	if heap := d.status().HeapLive; heap > base+budget*3/2 {
		t.Errorf("live heap %d MB while staging %d routes against a %d MB budget (from %d MB)", heap>>20, seed, budget>>20, base>>20)
	}
}

// TestBatchLongLineNumbered: a batch line past rtm's 1 MiB limit stops the
// batch with that line's number, as every other failing line does.
func TestBatchLongLineNumbered(t *testing.T) {
	d := startRtmd(t)
	in := "route add 10.0.0.0/8 dev eth0\n# 2\nroute add " + strings.Repeat("x", 2<<20) + "\nroute show\n"
	_, errs, code := d.rtm(in, "-batch", "-")
	if code != 1 || !strings.Contains(errs, "line 3") {
		t.Errorf("rtm -batch with a 2 MiB line 3: exit %d, %q; want exit 1 naming line 3", code, errs)
	}
}
