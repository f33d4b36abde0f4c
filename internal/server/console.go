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
 13) flush both tables (registered clients get SIGUSR1)
 14) list the connected clients
  0) stop rtmd`

// menuItems maps the console menu's numbers to commands, and the arguments
// they prompt for.
var menuItems = map[string]struct{ verb, args string }{
	"1": {"route show", ""}, "2": {"route add", "PREFIX via GATEWAY dev OIF"},
	"3": {"route change", "PREFIX via GATEWAY dev OIF"}, "4": {"route replace", "PREFIX via GATEWAY dev OIF"},
	"5": {"route del", "PREFIX"}, "6": {"route get", "ADDR"}, "7": {"route load", "FILE"},
	"8": {"status", ""}, "9": {"mac show", ""}, "10": {"mac replace", "MAC IP"},
	"11": {"mac del", "MAC"}, "12": {"mac get", "MAC"},
	"13": {"flush", ""}, "14": {"clients", ""},
}

// Console reads admin commands from in until EOF or ctx is done: menu
// numbers, which prompt for their arguments, or the rtm grammar without the
// leading "rtm". Commands run on the loop like any client's. stop is called
// for "0" or "stop".
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
		switch strings.TrimSpace(line) {
		case "0", "stop":
			fmt.Fprintln(w, "stopping rtmd")
			stop()
			return
		case "menu":
			fmt.Fprintln(w, consoleMenu)
			continue
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
		fmt.Fprintln(w, "menu                                      print the menu")
		fmt.Fprintln(w, "stop                                      stop rtmd")
		return nil
	case command.RouteShow:
		v, _, err := s.View(ctx)
		if err != nil {
			return err
		}
		b := make([]byte, 0, 128)
		for r := range v.All() {
			b = b[:0]
			if cmd.JSON {
				b = command.AppendRouteJSON(b, r)
			} else {
				b = r.AppendText(b)
			}
			w.Write(append(b, '\n'))
		}
		return nil
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
			fmt.Fprintln(w, res.Route)
		}
	case command.RouteLoad:
		res, err = s.consoleLoad(ctx, cmd.File)
		if err != nil {
			return err
		}
		if res.Err == nil {
			fmt.Fprintf(w, "%d routes changed\n", res.Changes)
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
		found := false
		for _, e := range entries {
			if cmd.Verb == command.MACGet && e.mac != cmd.MAC {
				continue
			}
			found = true
			if cmd.JSON {
				w.Write(append(command.AppendMACJSON(nil, e.mac, e.ip), '\n'))
			} else {
				fmt.Fprintln(w, e.mac, e.ip)
			}
		}
		if cmd.Verb == command.MACGet && !found {
			return fmt.Errorf("no entry for mac %v", cmd.MAC)
		}
		return nil
	default:
		return fmt.Errorf("%v is not a console command", cmd.Verb)
	}
	if res.Err != nil {
		return res.Err
	}
	if cmd.Verb.IsMutation() && cmd.Verb != command.RouteLoad && cmd.Verb != command.MACLoad {
		fmt.Fprintln(w, "ok")
	}
	return nil
}

// consoleLoad reads a route file and applies it as one batch.
func (s *Server) consoleLoad(ctx context.Context, file string) (Result, error) {
	if file == "-" {
		return Result{}, errors.New("route load: the console reads commands from stdin; give a FILE")
	}
	f, err := os.Open(file)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	w := wire.RouteWriter{Head: nil}
	batch := new(loadBatch)
	stage := func(frame []byte) error {
		if len(frame) < wire.HeaderLen {
			return nil
		}
		return batch.add(frame[wire.HeaderLen:], s.cfg.MaxLoad)
	}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		r, err := route.ParseLine(text)
		if err != nil {
			return Result{}, fmt.Errorf("%s:%d: %w (nothing loaded)", file, line, err)
		}
		w.Add(r)
		if w.Full() {
			if err := stage(w.Flush()); err != nil {
				return Result{}, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, err
	}
	if err := stage(w.Flush()); err != nil {
		return Result{}, err
	}
	ch := make(chan Result, 1)
	ev := evRequest{kind: wire.KLoad, load: batch, done: func(r Result) { ch <- r }}
	select {
	case s.events <- ev:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	return <-ch, nil
}
