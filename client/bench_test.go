package client_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
)

// BenchmarkLookupMAC reads MAC entries from shared memory through a Mirror
// while a writer makes about 100,000 changes a second.
func BenchmarkLookupMAC(b *testing.B) {
	benchmarkLookupMAC(b, 1)
}

// BenchmarkLookupMACs is BenchmarkLookupMAC with lookups in batches of 64
// (LookupMACs); the figures are per MAC.
func BenchmarkLookupMACs(b *testing.B) {
	benchmarkLookupMAC(b, 64)
}

func benchmarkLookupMAC(b *testing.B, batch int) {
	socket, stop := startServer()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.Dial(ctx, socket)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const n = 1024
	entries := make([]client.MACEntry, n)
	for i := range entries {
		entries[i] = client.MACEntry{MAC: client.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
	}
	if _, _, err := c.LoadMACs(ctx, entries); err != nil {
		b.Fatal(err)
	}
	m := &client.Mirror{Address: socket}
	go m.Run(ctx)
	if err := m.WaitSeq(ctx, n); err != nil {
		b.Fatal(err)
	}
	var changes atomic.Int64
	go func() {
		// 100 batches of 1,000 changes a second.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ctx.Err() == nil; k++ {
			for i := range 1000 {
				e := &entries[i%n]
				e.IP = netip.AddrFrom4([4]byte{10, byte(k), byte(i >> 8), byte(i)})
			}
			if _, _, err := c.LoadMACs(ctx, entries[:1000]); err == nil {
				changes.Add(1000)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}()
	i := 0
	keys := make([]client.MAC, n)
	for i := range keys {
		keys[i] = entries[i].MAC
	}
	ips := make([]netip.Addr, batch)
	missed := 0
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if batch == 1 {
			if _, ok := m.LookupMAC(keys[i&(n-1)]); !ok {
				b.Fatal("not found")
			}
			i++
			continue
		}
		// A lookup gives up on a record whose lock stays odd for 100,000
		// tries, as it can on a loaded machine; one in a batch is more
		// likely than one alone.
		j := i & (n - 1)
		got := m.LookupMACs(keys[j:j+batch], ips)
		if got == 0 {
			b.Fatal("not found")
		}
		missed += batch - got
		i += batch
	}
	if batch > 1 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/mac")
		b.ReportMetric(float64(missed)/float64(b.N*batch), "missed/mac")
	}
	b.ReportMetric(float64(changes.Load())/time.Since(start).Seconds(), "writes/s")
}
