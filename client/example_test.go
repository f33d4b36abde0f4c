package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/server"
)

// startServer runs an rtmd in this process for the example; a real program
// connects to the rtmd already running on the host.
func startServer() (socket string, stop func()) {
	dir, _ := os.MkdirTemp("", "rtmex")
	socket = filepath.Join(dir, "rtm.sock")
	s, err := server.New(server.Config{Socket: socket, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return socket, func() { cancel(); <-done; os.RemoveAll(dir) }
}

// A program adds a route through one connection, and a Mirror elsewhere
// sees it and answers lookups from its local copy.
func Example() {
	socket, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, socket)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	seq, err := c.Add(ctx, client.Route{
		Dst:      netip.MustParsePrefix("10.0.0.0/8"),
		Metric:   100,
		NextHops: []client.NextHop{{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "eth0"}},
	})
	fmt.Println("add:", seq, err)
	_, err = c.Add(ctx, client.Route{
		Dst:      netip.MustParsePrefix("10.0.0.0/8"),
		NextHops: []client.NextHop{{Gateway: netip.MustParseAddr("192.0.2.2"), Dev: "eth0"}},
	})
	fmt.Println("add again:", errors.Is(err, client.ErrExists))

	m := &client.Mirror{Address: socket}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.Run(mctx)
	if err := m.WaitSeq(ctx, seq); err != nil {
		fmt.Println(err)
		return
	}
	r, ok := m.Lookup(netip.MustParseAddr("10.1.2.3"))
	fmt.Println("lookup:", r, ok)
	// Output:
	// add: 1 <nil>
	// add again: true
	// lookup: 10.0.0.0/8 via 192.0.2.1 dev eth0 proto static metric 100 true
}
