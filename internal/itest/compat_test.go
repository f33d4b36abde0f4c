package itest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
)

// goCompatClient reads records one per read, as the classic clients do,
// and returns its table when the server closes the connection.
func goCompatClient(t *testing.T, socket string) <-chan []string {
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []string, 1)
	go func() {
		defer nc.Close()
		table := map[netip.Prefix]string{}
		rec := make([]byte, compat.U16.Size)
		for {
			if _, err := io.ReadFull(nc, rec); err != nil {
				break
			}
			r, err := compat.U16.Decode(rec)
			if err != nil {
				t.Errorf("go compat client: %v", err)
				break
			}
			_, had := table[r.Dst]
			switch r.Op {
			case compat.Create, compat.Update:
				if r.Op == compat.Update && !had {
					t.Errorf("UPDATE of missing %v", r.Dst)
				}
				table[r.Dst] = classicLine(r.Dst, r.Gateway, r.Dev)
			case compat.Delete:
				if !had {
					t.Errorf("DELETE of missing %v", r.Dst)
				}
				delete(table, r.Dst)
			}
		}
		var lines []string
		for _, l := range table {
			lines = append(lines, l)
		}
		sort.Strings(lines)
		out <- lines
	}()
	return out
}

// TestCompat runs a seeded random sequence of changes (IPv4 and IPv6
// routes, MAC entries, a flush) while classic clients in C and Go read the
// u16 records (-compat-socket PATH:u16), one of each from the start and a
// C one from midway; at the end each holds exactly rtmd's IPv4 table.
func TestCompat(t *testing.T) {
	gcc, gccErr := exec.LookPath("gcc")
	var cbin string
	if gccErr != nil {
		t.Log("gcc not found: the C client is skipped; the Go one runs")
	} else {
		cbin = filepath.Join(t.TempDir(), "compat_u16")
		if out, err := exec.Command(gcc, "-O", "-DU16", "-o", cbin, "testdata/compat72.c").CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
	}
	compatSock := filepath.Join(shortDir(t), "compat.sock")
	d := startRtmd(t, "-compat-socket", compatSock+":u16")
	startC := func() <-chan []string {
		out := make(chan []string, 1)
		if cbin == "" {
			close(out)
			return out
		}
		cmd := exec.Command(cbin, compatSock)
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		if l, _ := r.ReadString('\n'); l != "connected\n" {
			t.Fatalf("C client: %q", l)
		}
		go func() {
			data, _ := io.ReadAll(r)
			cmd.Wait()
			if stderr.Len() > 0 {
				t.Errorf("C client: %s", stderr.String())
			}
			// The table, then "end".
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) == 0 || lines[len(lines)-1] != "end" {
				t.Errorf("C client: output does not end with \"end\": %q", data)
			} else {
				lines = lines[:len(lines)-1]
			}
			sort.Strings(lines)
			out <- lines
		}()
		return out
	}
	clients := []<-chan []string{goCompatClient(t, compatSock), startC()}

	c := d.dial()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 3000 {
		if i == 1500 {
			clients = append(clients, startC())
			d.mustRtm("flush", "all")
		}
		r := randRoute(rng)
		switch rng.IntN(6) {
		case 0:
			c.Add(ctx, r)
		case 1:
			c.Change(ctx, r)
		case 2, 3:
			c.Replace(ctx, r)
		case 4:
			c.Delete(ctx, r.Table, r.Dst)
		case 5:
			c.ReplaceMAC(ctx, client.MACEntry{MAC: testMAC(rng.IntN(50)), IP: netip.MustParseAddr("10.0.0.1")})
		}
	}
	// What the record holds: unicast IPv4 routes of the main table through
	// one IPv4 gateway and a device; the rest is not sent.
	var want []string
	sc := d.dial()
	seq, err := sc.Snapshot(ctx, func(r client.Route) {
		if r.Table == client.TableMain && r.Type == client.Unicast && r.Dst.Addr().Is4() &&
			len(r.NextHops) == 1 && r.NextHops[0].Gateway.Is4() && r.NextHops[0].Dev != "" {
			want = append(want, classicLine(r.Dst, r.NextHops[0].Gateway, r.NextHops[0].Dev))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	// Wait until rtmd has written everything to the compat clients, then
	// stop it: they read to the end and print their tables.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var list []client.ClientInfo
		json.Unmarshal([]byte(d.mustRtm("clients", "-j")), &list)
		behind := 0
		for _, cl := range list {
			if cl.Transport == "compat" && cl.Delivered < seq {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("compat clients behind: %+v (seq %d)", list, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.stop()
	for i, ch := range clients {
		got, ok := <-ch
		if !ok {
			continue // no gcc
		}
		if !slices.Equal(got, want) {
			t.Errorf("compat client %d: %d routes, want rtmd's %d IPv4 routes\n%s", i, len(got), len(want), diff(got, want))
		}
	}
	if len(want) == 0 {
		t.Error("the sequence left no IPv4 routes to compare")
	}
	t.Logf("%d IPv4 routes, seq %d", len(want), seq)
}

// classicLine is a route as the compat clients print it.
func classicLine(dst netip.Prefix, gw netip.Addr, dev string) string {
	return fmt.Sprintf("%v via %v dev %s", dst, gw, dev)
}
