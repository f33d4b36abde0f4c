package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/server"
	"github.com/rtm-project/rtm/internal/wire"
)

// FuzzConversation drives a whole conversation, any sequence of frames
// after a valid Hello, into a real rtmd in this process, over its Unix
// socket (a peer that may change the tables) or its TCP listener (one that
// may not). After each conversation rtmd must still answer, and a TCP
// conversation must have changed nothing. A panic anywhere in rtmd fails
// the fuzz target.
func FuzzConversation(f *testing.F) {
	for _, seed := range conversationSeeds() {
		f.Add(false, seed)
		f.Add(true, seed)
	}
	srv := startServer(f)
	f.Fuzz(func(t *testing.T, overTCP bool, conv []byte) {
		before := srv.status(t)
		network, addr := "unix", srv.socket
		if overTCP {
			network, addr = "tcp", srv.tcp
		}
		nc, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		hello := wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "fuzz"})
		// rtmd may close the connection before it has read all of it: a
		// write error is part of the conversation.
		nc.Write(append(hello, conv...))
		nc.(interface{ CloseWrite() error }).CloseWrite()
		// rtmd answers, then closes when it reads the end of the
		// conversation (or earlier, on a protocol error).
		if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
			t.Fatalf("reading rtmd's answers: %v", err)
		}
		after := srv.status(t)
		if overTCP && (after.Seq != before.Seq || after.Routes4 != before.Routes4 || after.Routes6 != before.Routes6 || after.MACs != before.MACs) {
			t.Fatalf("a TCP peer changed the tables: seq %d -> %d, routes %d+%d -> %d+%d, MACs %d -> %d",
				before.Seq, after.Seq, before.Routes4, before.Routes6, after.Routes4, after.Routes6, before.MACs, after.MACs)
		}
	})
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

type testServer struct {
	socket, tcp string
	check       *client.Conn
}

// startServer starts rtmd in this process for the whole fuzz run.
func startServer(f *testing.F) *testServer {
	// A conversation may register this process and flush: the signal
	// must not kill it.
	signal.Ignore(syscall.SIGUSR1)
	s := runServer(f, server.Config{Listen: "127.0.0.1:0", MaxLoad: 100_000,
		Limits: server.Limits{WriteTimeout: 5 * time.Second}})
	ts := &testServer{socket: s.Addr()}
	var err error
	if ts.check, err = client.Dial(context.Background(), ts.socket); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ts.check.Close() })
	st, err := ts.check.Status(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	ts.tcp = st.TCP
	return ts
}

// status asks rtmd for its status; rtmd must answer within seconds.
func (ts *testServer) status(t *testing.T) client.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := ts.check.Status(ctx)
	if err != nil {
		t.Fatalf("rtmd does not answer: %v", err)
	}
	return st
}

// conversationSeeds are valid conversations with each kind of request,
// for the fuzzer to start from.
func conversationSeeds() [][]byte {
	rt := route.Simple(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("10.1.1.1"), "eth0")
	rt6 := route.Simple(netip.MustParsePrefix("2001:db8::/32"), netip.MustParseAddr("fe80::1"), "eth1")
	ecmp := rt
	ecmp.Table, ecmp.Metric = 100, 20
	ecmp.Hops = []route.NextHop{{Gateway: netip.MustParseAddr("10.1.1.1"), Dev: "eth0", Weight: 3}, {Dev: "eth1", Weight: 1}}
	sel := wire.AppendSelector(nil, route.Selector{Table: 100, Mode: route.Root, Prefix: netip.MustParsePrefix("10.0.0.0/7"), Dev: "eth1"})
	delSel := wire.AppendSelector(nil, route.Selector{Table: route.TableMain, Mode: route.Exact, Prefix: rt6.Dst, Via: netip.MustParseAddr("fe80::1")})
	m := mac.Addr{2, 0, 0x5e, 0x10, 0, 1}
	ip := netip.MustParseAddr("10.0.0.1")
	req := func(id uint32, kind byte, body []byte) []byte { return wire.AppendRequest(nil, id, kind, body) }
	routes := binary.LittleEndian.AppendUint32(nil, 2)
	routes = wire.AppendRoute(wire.AppendRoute(routes, rt), rt6)
	macs := binary.LittleEndian.AppendUint32(nil, 1)
	macs = wire.AppendDev(wire.AppendAddr(append(macs, m[:]...), ip), "eth0")
	batch := func(flags byte, entries ...[]byte) []byte {
		b := binary.LittleEndian.AppendUint32([]byte{flags}, uint32(len(entries)))
		for _, e := range entries {
			b = append(b, e...)
		}
		return b
	}
	join := func(frames ...[]byte) []byte {
		var b []byte
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	return [][]byte{
		join(req(1, wire.KAdd, wire.AppendRoute(nil, rt)), req(2, wire.KGet, wire.AppendAddr(binary.LittleEndian.AppendUint32(nil, 0), ip))),
		join(req(1, wire.KReplace, wire.AppendRoute(nil, rt6)), req(2, wire.KDel, delSel)),
		join(req(1, wire.KReplace, wire.AppendRoute(nil, ecmp)), req(2, wire.KRouteFlush, sel)),
		join(req(1, wire.KSubscribe, nil), req(2, wire.KChange, wire.AppendRoute(nil, rt)), req(0, wire.KAck, binary.LittleEndian.AppendUint64(nil, 1))),
		join(req(3, wire.KLoad, append([]byte{0}, routes...)), req(3, wire.KLoad, append([]byte{wire.LoadFinal}, routes...))),
		join(req(4, wire.KMACLoad, append([]byte{0}, macs...)), req(4, wire.KLoad, append([]byte{wire.LoadFinal}, routes...))),
		join(req(5, wire.KMACAdd, wire.AppendDev(wire.AppendAddr(append([]byte(nil), m[:]...), ip), "")), req(6, wire.KMACDel, m[:])),
		join(req(7, wire.KMACLoad, append([]byte{wire.LoadFinal}, macs...)), req(8, wire.KFlush, nil)),
		join(req(9, wire.KRegister, binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid()))), req(10, wire.KClients, nil), req(11, wire.KStatus, nil)),
		join(req(12, 200, []byte("x")), req(0, wire.KGoodbye, nil)),
		join(req(13, wire.KBatch, batch(0, wire.AppendBatchEntry(nil, wire.KAdd, wire.AppendRoute(nil, rt)),
			wire.AppendBatchEntry(nil, wire.KAdd, wire.AppendRoute(nil, rt)), wire.AppendBatchEntry(nil, wire.KRouteFlush, sel)))),
		join(req(14, wire.KBatch, batch(wire.BatchForce, wire.AppendBatchEntry(nil, wire.KMACDel, m[:]),
			wire.AppendBatchEntry(nil, wire.KReplace, wire.AppendRoute(nil, ecmp)), wire.AppendBatchEntry(nil, wire.KFlush, nil)))),
	}
}
