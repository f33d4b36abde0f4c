package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

const consoleMenu = `rtmd console: a menu number, or a command (help for the grammar)
  1) show routes        5) delete a route              9) show the MAC table
  2) add a route        6) look up an address         10) add or change a MAC entry
  3) change a route     7) load routes from a file    11) delete a MAC entry
  4) replace a route    8) status                     12) look up a MAC
 13) flush both tables, after asking (registered clients get SIGUSR1)
 14) list the connected clients
  0) stop rtmd, after asking`

// menuItems maps the console menu's numbers to commands, and the arguments
// they prompt for.
var menuItems = map[string]struct{ verb, args string }{
	"1": {"route show", ""}, "2": {"route add", "ROUTE (as ip route add)"},
	"3": {"route change", "ROUTE"}, "4": {"route replace", "ROUTE"},
	"5": {"route del", "PREFIX [table T] [via GW] [dev IF] ..."}, "6": {"route get", "ADDR [table T]"},
	"7": {"route load", "FILE"}, "8": {"status", ""}, "9": {"mac show", ""},
	"10": {"mac replace", "MAC IP [dev IF]"}, "11": {"mac del", "MAC"}, "12": {"mac get", "MAC"},
	"13": {"flush all", ""}, "14": {"clients", ""},
}

// Console reads admin commands from in until EOF or ctx is done: menu
// numbers, which prompt for their arguments, or the rtm grammar without the
// leading "rtm". Commands run on the loop like any client's. stop is called
// for "0" or "stop". Before "flush all" and "stop" it asks, and anything
// but y or yes cancels.
func (s *Server) Console(ctx context.Context, in io.Reader, out io.Writer, interactive bool, stop func()) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 1<<20)
	ask := func(p string) (string, bool) {
		if interactive {
			fmt.Fprint(w, p)
		}
		w.Flush()
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				// bufio.Scanner cannot go on past a line too long.
				fmt.Fprintf(w, "error: %v; the console stops (rtmd goes on)\n", err)
			}
			return "", false
		}
		return strings.TrimSpace(sc.Text()), true
	}
	fmt.Fprintln(w, consoleMenu)
	for ctx.Err() == nil {
		line, ok := ask("rtmd> ")
		if !ok {
			return
		}
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if item, ok := menuItems[f[0]]; ok {
			args := strings.Join(f[1:], " ")
			if args == "" && item.args != "" {
				if args, ok = ask(item.verb + " " + item.args + ": "); !ok {
					return
				}
			}
			line = item.verb + " " + args
		}
		confirm := func(q string) (yes, ok bool) {
			a, ok := ask(q + " [y/N] ")
			if !interactive {
				fmt.Fprintln(w, q, "[y/N]", a)
			}
			yes = strings.EqualFold(a, "y") || strings.EqualFold(a, "yes")
			if ok && !yes {
				fmt.Fprintln(w, "cancelled")
			}
			return yes, ok
		}
		switch strings.TrimSpace(line) {
		case "0", "stop":
			yes, ok := confirm("stop rtmd?")
			if !ok {
				return
			}
			if yes {
				fmt.Fprintln(w, "stopping rtmd")
				stop()
				return
			}
			continue
		case "menu":
			fmt.Fprintln(w, consoleMenu)
			continue
		}
		if cmd, err := command.ParseLine(line); err == nil && (cmd.Verb == command.Flush || cmd.Verb == command.RouteFlush) {
			q := "flush all routes and MACs?"
			if cmd.Verb == command.RouteFlush {
				q = "flush the routes that " + strings.TrimSpace(line) + " picks?"
			}
			yes, ok := confirm(q)
			if !ok {
				return
			}
			if !yes {
				continue
			}
		}
		if err := s.consoleCommand(ctx, w, line); err != nil {
			fmt.Fprintln(w, "error:", err)
		}
	}
}

func (s *Server) consoleCommand(ctx context.Context, w *bufio.Writer, line string) error {
	cmd, err := command.ParseLine(line)
	if err != nil {
		return err
	}
	var res Result
	switch cmd.Verb {
	case command.Help:
		fmt.Fprintln(w, command.Usage)
		fmt.Fprintln(w, "menu                            print the menu")
		fmt.Fprintln(w, "stop                            stop rtmd")
		return nil
	case command.RouteShow:
		v, _, err := s.View(ctx)
		if err != nil {
			return err
		}
		rw := command.RouteWriter{W: w, JSON: cmd.JSON, Oneline: cmd.Oneline}
		for r := range v.All() {
			if cmd.Sel.Select(&r) {
				rw.Route(r)
			}
		}
		return rw.Close()
	case command.RouteFlush:
		res = s.do(ctx, evRequest{kind: wire.KRouteFlush, sel: cmd.Sel})
		if res.Err == nil {
			fmt.Fprintf(w, "%d routes flushed\n", res.Changes)
		}
	case command.RouteAdd:
		res = s.do(ctx, evRequest{kind: wire.KAdd, route: cmd.Route})
	case command.RouteChange:
		res = s.do(ctx, evRequest{kind: wire.KChange, route: cmd.Route})
	case command.RouteReplace:
		res = s.do(ctx, evRequest{kind: wire.KReplace, route: cmd.Route})
	case command.RouteDel:
		res = s.do(ctx, evRequest{kind: wire.KDel, sel: cmd.Sel})
	case command.RouteGet:
		res = s.do(ctx, evRequest{kind: wire.KGet, table: cmd.Table, addr: cmd.Addr})
		if res.Err == nil {
			rw := command.RouteWriter{W: w, JSON: cmd.JSON, Oneline: cmd.Oneline}
			rw.Route(res.Route)
			rw.Close()
		}
	case command.RouteLoad:
		var ignored int
		res, ignored, err = s.consoleLoad(ctx, cmd.File)
		if err != nil {
			return err
		}
		if res.Err == nil {
			fmt.Fprintf(w, "%d routes changed", res.Changes)
			if ignored > 0 {
				fmt.Fprintf(w, "; ignored %d words not kept by rtm (scope, linkdown, ...)", ignored)
			}
			fmt.Fprintln(w)
		}
	case command.MACAdd:
		res = s.do(ctx, evRequest{kind: wire.KMACAdd, mac: cmd.MAC, ip: cmd.Addr, dev: cmd.Dev})
	case command.MACChange:
		res = s.do(ctx, evRequest{kind: wire.KMACChange, mac: cmd.MAC, ip: cmd.Addr, dev: cmd.Dev})
	case command.MACReplace:
		res = s.do(ctx, evRequest{kind: wire.KMACReplace, mac: cmd.MAC, ip: cmd.Addr, dev: cmd.Dev})
	case command.MACDel:
		res = s.do(ctx, evRequest{kind: wire.KMACDel, mac: cmd.MAC})
	case command.Flush:
		res = s.do(ctx, evRequest{kind: wire.KFlush})
	case command.Status:
		res = s.do(ctx, evRequest{kind: wire.KStatus})
		var st wire.Status
		if res.Err == nil {
			if err := json.Unmarshal([]byte(res.Text), &st); err != nil {
				return err
			}
			command.PrintStatus(w, st, cmd.JSON)
		}
	case command.Clients:
		res = s.do(ctx, evRequest{kind: wire.KClients})
		if res.Err == nil {
			fmt.Fprintln(w, res.Text)
		}
	case command.MACShow, command.MACGet:
		entries, err := s.MACs(ctx)
		if err != nil {
			return err
		}
		// As rtm prints them: mac show -j is an array, mac get -j one
		// object.
		var b []byte
		found := 0
		for _, e := range entries {
			if cmd.Verb == command.MACGet && e.mac != cmd.MAC {
				continue
			}
			switch {
			case cmd.JSON && cmd.Verb == command.MACShow:
				if found == 0 {
					b = append(b, '[')
				} else {
					b = append(b, ',')
				}
				b = command.AppendMACJSON(b, e.mac, e.ip, e.dev)
			case cmd.JSON:
				b = append(command.AppendMACJSON(b, e.mac, e.ip, e.dev), '\n')
			default:
				b = append(command.AppendMACText(b, e.mac, e.ip, e.dev), '\n')
			}
			found++
		}
		if cmd.JSON && cmd.Verb == command.MACShow {
			if found == 0 {
				b = append(b, '[')
			}
			b = append(b, "]\n"...)
		}
		w.Write(b)
		if cmd.Verb == command.MACGet && found == 0 {
			return fmt.Errorf("no entry for mac %v", cmd.MAC)
		}
		return nil
	default:
		return fmt.Errorf("%v is not a console command", cmd.Verb)
	}
	if res.Err != nil {
		return res.Err
	}
	if cmd.Verb.IsMutation() && cmd.Verb != command.RouteLoad && cmd.Verb != command.MACLoad && cmd.Verb != command.RouteFlush {
		fmt.Fprintln(w, "ok")
	}
	return nil
}

// consoleLoad reads a route file, as ip route show prints it, and applies
// it as one batch. It returns the number of words rtm does not keep.
func (s *Server) consoleLoad(ctx context.Context, file string) (Result, int, error) {
	if file == "-" {
		return Result{}, 0, errors.New("route load: the console reads commands from stdin; give a FILE")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return Result{}, 0, err
	}
	w := wire.RouteWriter{Head: nil}
	batch := new(loadBatch)
	stage := func(frame []byte) error {
		if len(frame) < wire.HeaderLen {
			return nil
		}
		return batch.add(frame[wire.HeaderLen:], s.cfg.MaxLoad)
	}
	ignored := 0
	for line, text := range route.Lines(string(data)) {
		text = strings.TrimSpace(text)
		if text == "" || text[0] == '#' {
			continue
		}
		r, n, err := route.ParseLine(text)
		if err != nil {
			return Result{}, 0, fmt.Errorf("%s:%d: %w (nothing loaded)", file, line, err)
		}
		ignored += n
		w.Add(r)
		if w.Full() {
			if err := stage(w.Flush()); err != nil {
				return Result{}, 0, err
			}
		}
	}
	if err := stage(w.Flush()); err != nil {
		return Result{}, 0, err
	}
	ch := make(chan Result, 1)
	ev := evRequest{kind: wire.KLoad, load: batch, done: func(r Result) { ch <- r }}
	select {
	case s.events <- ev:
	case <-ctx.Done():
		return Result{}, 0, ctx.Err()
	}
	return <-ch, ignored, nil
}
