package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/server"
	"github.com/rtm-project/rtm/internal/wire"
)

// TestRefusedWritesHoldNothing checks that writes rtmd refuses for their
// sender (here a TCP peer, which may only subscribe) leave nothing behind:
// 4096 adds, each with its own 32 next hops, once made the connection's
// decoder keep every hop list (some 17 MB a connection, 16 connections an
// address, 256 in all).
func TestRefusedWritesHoldNothing(t *testing.T) {
	s := runServer(t, server.Config{Listen: "127.0.0.1:0"})
	ctx := context.Background()
	c, err := client.Dial(ctx, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	nc, err := net.Dial("tcp", st.TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "refused"})); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(nc)
	if _, _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const n = 4096
	go func() {
		var buf []byte
		for i := range n {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			binary.BigEndian.PutUint32(a[4:], uint32(i))
			rt := route.Route{Table: route.TableMain, Dst: netip.PrefixFrom(netip.AddrFrom16(a), 64),
				Attrs: route.Attrs{Type: route.Unicast, Proto: route.ProtoStatic, Hops: make([]route.NextHop, route.MaxHops)}}
			for j := range rt.Hops {
				a[15] = byte(j)
				rt.Hops[j] = route.NextHop{Gateway: netip.AddrFrom16(a), Dev: fmt.Sprintf("e%08x%06d", i, j), Weight: 256}
			}
			buf = wire.AppendRequest(buf[:0], uint32(i), wire.KAdd, wire.AppendRoute(nil, rt))
			if _, err := nc.Write(buf); err != nil {
				return
			}
		}
	}()
	for i := range n {
		typ, p, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if typ != wire.TReply || len(p) < 5 || p[4] == wire.StatusOK {
			t.Fatalf("reply %d: frame type %d, payload %q; want a refusal", i, typ, p)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2<<20 {
		t.Errorf("the heap grew by %d bytes for %d refused adds on a connection still open, want at most 2 MiB", grew, n)
	}
	runtime.KeepAlive(nc)
}
