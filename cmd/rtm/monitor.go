package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/route"
)

// monitor prints the table and then every change. Without --follow it ends,
// with an error, when the connection to rtmd does, or cannot be made; with
// --follow it reconnects, and the table it is resent follows a "resync"
// line.
func (e *env) monitor(ctx context.Context, cmd command.Command) error {
	b := make([]byte, 0, 256)
	down := false // said that rtmd is gone; said again once it was back
	m := &client.Mirror{
		Network:     e.network(),
		Address:     e.address(),
		Dialer:      e.dialer("rtm monitor"),
		NoReconnect: !cmd.Follow,
		OnError: func(err error) {
			if down {
				return
			}
			down = true
			e.stdout.Flush()
			fmt.Fprintf(os.Stderr, "rtm monitor: %v; retrying until it answers\n", e.explain(err))
		},
	}
	// Without --follow, the wait for the first table is bounded by
	// --timeout, as a request is (time spent writing output does not
	// count); after it the stream is open-ended.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if e.timeout > 0 && !cmd.Follow {
		e.limit = e.timeout
		t := time.AfterFunc(e.timeout, func() {
			e.timedOut.Store(true)
			cancel()
		})
		defer t.Stop()
		e.out.timer, e.out.deadline = t, time.Now().Add(e.timeout)
	}
	first := true
	m.OnEvent = func(ev client.Event) {
		if ev.Kind == client.Synced {
			down = false
			if t := e.out.timer; t != nil {
				t.Stop()
				e.out.timer = nil
			}
		}
		b = b[:0]
		op := ev.Kind.String()
		switch {
		case ev.Kind == client.Reset && first:
			first = false
			return
		case ev.Kind == client.Reset && ev.History:
			op = "reset" // the table that follows replaces this one
		case ev.Kind == client.Reset:
			op = "resync"
		case ev.Kind == client.Synced && ev.Resumed:
			op = "resumed"
		}
		if ev.Object == client.MACs && (ev.Kind == client.Add || ev.Kind == client.Change || ev.Kind == client.Del) {
			ip := ev.IP
			if cmd.JSON {
				b = command.AppendMACEventJSON(b, ev.Seq, op, ev.MAC, ip, ev.Dev)
			} else {
				b = append(append(b, op...), " mac "...)
				b = ev.MAC.AppendTo(b)
				if ip.IsValid() && ev.Kind != client.Del {
					b = ip.AppendTo(append(b, ' '))
				}
				if ev.Dev != "" && ev.Kind != client.Del {
					b = append(append(b, " dev "...), ev.Dev...)
				}
			}
		} else if cmd.JSON {
			var r route.Route
			if ev.Kind == client.Add || ev.Kind == client.Change || ev.Kind == client.Del {
				r = internalRoute(ev.Route)
			}
			b = command.AppendEventJSON(b, ev.Seq, op, r)
		} else {
			b = append(b, op...)
			switch ev.Kind {
			case client.Add, client.Change:
				// One line, as a multipath route is in ip monitor -o.
				b = internalRoute(ev.Route).AppendLine(append(b, ' '))
			case client.Del:
				b = ev.Route.Dst.AppendTo(append(b, ' '))
				if ev.Route.Table != 0 && ev.Route.Table != route.TableMain {
					b = append(append(b, " table "...), route.TableName(ev.Route.Table)...)
				}
			default: // synced, resumed, flush, resync, reset
				b = strconv.AppendUint(append(b, " seq "...), ev.Seq, 10)
				if op == "reset" {
					b = append(b, " reason history"...)
				}
			}
		}
		e.stdout.Write(append(b, '\n'))
		if !ev.More {
			e.stdout.Flush()
		}
	}
	err := m.Run(runCtx)
	e.stdout.Flush()
	if errors.Is(err, context.Canceled) && !e.timedOut.Load() {
		return nil // interrupted: the normal end
	}
	return err
}
