package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/route"
)

const clientMenu = `rtm client: a local copy of rtmd's tables
  1) show     print the local routes: show [SELECTOR] as rtm route show
              (PREFIX, root P, match A, table T|all, dev, via, proto, ...)
  2) lookup   the route a lookup of ADDR chooses: lookup ADDR [table T]
  3) status   sequence number, routes, resyncs
  4) macs     print the local MAC table, IPs read from shared memory
  5) mac      look up one MAC in shared memory
  0) quit
Type a number or a word; arguments may follow on the same line.`

// clientMenu runs the client process of the design: a Mirror kept in sync
// in the background, and a menu that reads only the local copy.
func (e *env) clientMenu(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Until the first sync, an error ends rtm client; after it, the mirror
	// reconnects, and says so once until it is back.
	first := make(chan error, 1) // nil for the first sync, or the error before it
	synced, down := false, false
	m := &client.Mirror{
		Network:  e.network(),
		Address:  e.address(),
		Dialer:   e.dialer("rtm client"),
		Register: true,
		OnError: func(err error) {
			if !synced {
				select {
				case first <- err:
				default:
				}
			} else if !down {
				down = true
				fmt.Fprintf(os.Stderr, "rtm client: %v; reconnecting\n", e.explain(err))
			}
		},
		OnEvent: func(ev client.Event) {
			if ev.Kind != client.Synced {
				return
			}
			if !synced {
				synced = true
				select {
				case first <- nil:
				default:
				}
			}
			down = false
		},
		OnFlushSignal: func(emptied bool) {
			fmt.Fprintln(os.Stderr, "rtm client: SIGUSR1: rtmd flushed its tables")
		},
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	// On the way out, stop the mirror and let it say goodbye.
	defer func() { cancel(); <-done }()

	// Commands wait for the first sync, so that a piped "show" does not
	// print an empty table.
	var expired <-chan time.Time
	if e.timeout > 0 {
		t := time.NewTimer(e.timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case err := <-first:
		if err != nil {
			return err
		}
	case <-expired:
		return fmt.Errorf("no table from rtmd at %s within %v (is it stopped? --timeout sets the limit)", e.address(), e.timeout)
	case <-ctx.Done():
		return nil
	}
	fmt.Fprintln(e.stdout, clientMenu)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	prompt := func(p string) (string, bool) {
		fmt.Fprint(e.stdout, p)
		e.stdout.Flush()
		select {
		case l, ok := <-lines:
			return strings.TrimSpace(l), ok
		case <-ctx.Done():
			return "", false
		}
	}
	for {
		line, ok := prompt("rtm client> ")
		if !ok {
			fmt.Fprintln(e.stdout)
			return nil
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "1", "show", "s":
			sel, err := route.ParseSelector(f[1:], e.family)
			if err != nil {
				fmt.Fprintln(e.stdout, "error:", err)
				continue
			}
			seq, _ := m.Seq()
			routes := m.Routes()
			var picked []route.Route
			for _, p := range routes {
				if r := internalRoute(p); sel.Select(&r) {
					picked = append(picked, r)
				}
			}
			fmt.Fprintf(e.stdout, "# seq %d, %d of %d routes\n", seq, len(picked), len(routes))
			rw := command.RouteWriter{W: e.stdout}
			for _, r := range picked {
				rw.Route(r)
			}
		case "2", "lookup", "get", "l":
			args := f[1:]
			if len(args) == 0 {
				arg, ok := prompt("address: ")
				if !ok {
					return nil
				}
				args = strings.Fields(arg)
			}
			// The words of rtm route get.
			cmd, err := command.Parse(append([]string{"route", "get"}, args...))
			if err != nil {
				fmt.Fprintln(e.stdout, "error:", err)
				continue
			}
			if r, ok := m.LookupIn(cmp.Or(cmd.Table, route.TableMain), cmd.Addr); ok {
				e.printRoute(r)
			} else {
				fmt.Fprintf(e.stdout, "no route to %v\n", cmd.Addr)
			}
		case "4", "macs":
			entries := m.MACEntries()
			fmt.Fprintf(e.stdout, "# %d MAC entries\n", len(entries))
			e.printMACs(entries, false)
		case "5", "mac":
			arg := ""
			if len(f) > 1 {
				arg = f[1]
			} else if arg, ok = prompt("mac: "); !ok {
				return nil
			}
			k, err := client.ParseMAC(arg)
			if err != nil {
				fmt.Fprintln(e.stdout, "error:", err)
				continue
			}
			if ip, ok := m.LookupMAC(k); ok {
				fmt.Fprintln(e.stdout, ip)
			} else {
				fmt.Fprintf(e.stdout, "no entry for mac %v\n", k)
			}
		case "3", "status":
			seq, _ := m.Seq()
			fmt.Fprintf(e.stdout, "seq %d, %d routes, %d resyncs\n", seq, m.Len(), m.Resyncs())
		case "0", "quit", "q", "exit":
			return nil
		case "help", "h", "?":
			fmt.Fprintln(e.stdout, clientMenu)
		default:
			fmt.Fprintf(e.stdout, "unknown choice %q; type help for the menu\n", f[0])
		}
	}
}
