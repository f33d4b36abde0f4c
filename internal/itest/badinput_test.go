package itest_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/wire"
)

func hello(version uint16) []byte {
	return wire.AppendHello(nil, wire.Hello{Version: version, Name: "bad"})
}

func request(kind byte, body []byte) []byte { return wire.AppendRequest(nil, 1, kind, body) }

// TestBadInput sends garbage, truncated, oversized and wrongly versioned
// frames to rtmd: each gets an error frame or a dropped connection, and the
// table and a subscriber are untouched.
func TestBadInput(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	before, _ := d.table()

	var events []client.Event
	m := &client.Mirror{Address: d.socket, NoReconnect: true, OnEvent: func(e client.Event) { events = append(events, e) }}
	ctx, cancel := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- m.Run(ctx) }()
	defer func() { cancel(); <-mdone }()
	if err := m.WaitSeq(ctx, 1); err != nil {
		t.Fatal(err)
	}

	oversized := binary.LittleEndian.AppendUint32(nil, 100<<20)
	oversized = append(oversized, wire.TRequest)
	// prefix, flags, one next hop: gateway, weight, dev
	badRoute := []byte{4, 8, 10, 1, 0, 0, 0, 1, 4, 10, 1, 1, 1, 0, 4, 'e', 't', 'h', '0'} // host bits set
	goodRoute := []byte{4, 8, 10, 0, 0, 0, 0, 1, 4, 10, 1, 1, 1, 0, 4, 'e', 't', 'h', '0'}
	main := []byte{254, 0, 0, 0}
	tests := []struct {
		name    string
		send    []byte
		wantMsg string // in the error frame; "" accepts a plain close
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		{"bad magic", wire.AppendFrame(nil, wire.THello, []byte("XXXX\x01\x00\x00\x00")), "bad magic"},
		{"unknown version", hello(99), "unsupported protocol version 99"},
		{"request before hello", request(wire.KAdd, badRoute), "want Hello"},
		{"truncated frame", append(hello(wire.Version), 0xff, 0, 0, 0, wire.TRequest, 1, 2, 3), ""},
		{"oversized frame", append(hello(wire.Version), oversized...), "frame too large"},
		{"host bits set", append(hello(wire.Version), request(wire.KAdd, badRoute)...), "host bits set"},
		{"truncated route", append(hello(wire.Version), request(wire.KAdd, goodRoute[:9])...), "truncated"},
		{"family 5", append(hello(wire.Version), request(wire.KDel, append(main, 1, 5, 8, 10, 0, 0, 0, 0))...), "family 5"},
		{"table 0", append(hello(wire.Version), request(wire.KAdd, append(append([]byte(nil), goodRoute[:6]...), append([]byte{1, 0, 0, 0, 0}, goodRoute[7:]...)...))...), "table"},
		{"33 next hops", append(hello(wire.Version), request(wire.KAdd, append(append([]byte(nil), goodRoute[:6]...), 0, 33))...), "33 next hops"},
		{"server frame type", append(hello(wire.Version), wire.AppendSynced(nil, 1)...), "frame type 8"},
		{"bad load chunk", append(hello(wire.Version), request(wire.KLoad, append([]byte{wire.LoadFinal, 1, 0, 0, 0}, badRoute...))...), "route 1 of the batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("unix", d.socket)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(tt.send)
			if tt.name == "truncated frame" {
				nc.(*net.UnixConn).CloseWrite()
			}
			// Read until rtmd closes or says what is wanted: a bad load
			// is refused with an error reply and the connection stays.
			nc.SetReadDeadline(time.Now().Add(15 * time.Second))
			var all []byte
			buf := make([]byte, 4096)
			for tt.wantMsg == "" || !strings.Contains(string(all), tt.wantMsg) {
				n, err := nc.Read(buf)
				all = append(all, buf[:n]...)
				if err == io.EOF || err != nil && strings.Contains(err.Error(), "reset") {
					break
				}
				if err != nil {
					t.Fatalf("reading: %v (rtmd neither answered nor closed)", err)
				}
			}
			if tt.wantMsg != "" && !strings.Contains(string(all), tt.wantMsg) {
				t.Errorf("rtmd answered %q, want a message containing %q", all, tt.wantMsg)
			}
		})
	}

	// An unknown request kind gets an error reply and the connection stays.
	c := d.dial()
	if _, err := c.Get(context.Background(), 0, netip.MustParseAddr("10.2.3.4")); err != nil {
		t.Fatalf("get after bad input: %v", err)
	}

	// Every dropped client is gone from rtmd's list, however it ended.
	for deadline := time.Now().Add(5 * time.Second); ; {
		var list []client.ClientInfo
		json.Unmarshal([]byte(d.mustRtm("clients", "-j")), &list)
		left := 0
		for _, cl := range list {
			if cl.Name == "bad" {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dropped clients still listed: %+v", left, list)
		}
		time.Sleep(20 * time.Millisecond)
	}

	after, _ := d.table()
	if !slices.Equal(before, after) {
		t.Errorf("table changed by bad input:\nbefore %q\nafter  %q", before, after)
	}
	// The subscriber is still served.
	d.mustRtm("route", "add", "10.9.0.0/16", "via", "10.1.1.1", "dev", "eth0")
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := m.WaitSeq(wctx, 2); err != nil {
		t.Fatalf("subscriber after bad input: %v", err)
	}
	if r, ok := m.Lookup(netip.MustParseAddr("10.9.1.1")); !ok || r.Dst.String() != "10.9.0.0/16" {
		t.Errorf("subscriber Lookup = %v, %v; want 10.9.0.0/16", r, ok)
	}
}

// TestUnknownRequestKind checks that a well-formed request of a kind rtmd
// does not know gets an error reply, not a dropped connection.
func TestUnknownRequestKind(t *testing.T) {
	d := startRtmd(t)
	nc, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(hello(wire.Version))
	nc.Write(wire.AppendRequest(nil, 7, 200, nil))
	nc.Write(wire.AppendRequest(nil, 8, wire.KGet, wire.AppendAddr(make([]byte, 4), netip.MustParseAddr("1.2.3.4"))))
	r := wire.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for len(got) < 3 {
		typ, p, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(rune('0'+typ))+" "+string(p))
	}
	if !strings.Contains(got[1], "unknown request kind 200") {
		t.Errorf("reply to kind 200 = %q", got[1])
	}
	if got[2][0] != '0'+wire.TReply || got[2][2+4] != wire.StatusNotFound {
		t.Errorf("reply to get = %q, want not found", got[2])
	}
}
