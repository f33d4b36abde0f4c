// Command rtm is the command line of rtm: it changes and queries rtmd's
// tables, follows their changes, and runs the client process with its menu.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/bench"
	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/state"
)

const usage = `usage: rtm [global flags] COMMAND [ARGS]

Global flags (before the command):
  -s, --socket PATH   rtmd's socket (default: $RTM_SOCKET, else /run/rtm/rtm.sock
                      if it exists, else $XDG_RUNTIME_DIR/rtm.sock)
      --trust-uid UID
                      also talk to an rtmd that runs as UID (repeatable, or
                      $RTM_TRUST_UID=UID,UID). By default rtm asks the kernel
                      who serves the socket and talks only to root or to its
                      own uid; a TCP peer (--connect) cannot be checked
      --timeout DURATION
                      how long to wait for rtmd (default 10s; 0: no limit): to
                      connect and greet it, then for each request (a load gets
                      as much again per million entries; writing rtm's own
                      output does not count). Once synced, monitor and client
                      wait for changes without a limit
  -j, --json          print JSON (same as -j after the command)
  -o, --oneline       route show: each route on one line (for ip -batch)
  -4, -6              read "default" as 0.0.0.0/0 or ::/0, and limit route
                      show and route flush to that family
  -b, --batch FILE    run the commands of FILE (- for stdin), one a line
                      without the leading "rtm", over one connection, as
                      ip -batch; blank lines and # comments are skipped. It
                      stops at the first error ("rtm: line N: ...", exit 1)
      --force         with --batch: go on after an error; exit 1 at the end
                      if any command failed
      --connect HOST:PORT
                      use rtmd's TCP listener instead of the socket: subscriptions
                      and queries only (monitor, client, route show/get, status)
      --via mq        send a change through rtmd's message queue and exit once
                      it is queued (rtmd logs a rejected command; nothing replies)
      --mq NAME       the queue, /NAME (default: derived from the socket path)
  -h, --help          print this help

Commands (words may be abbreviated: "rtm r sh" is "rtm route show";
flush never is):
`

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ error }

func main() {
	// The bench's own processes, not for users.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "bench-sub":
			bench.SubscriberMain(os.Args[2:])
			return
		case "bench-ref-reader":
			bench.RefReaderMain(os.Args[2:])
			return
		case "bench-redis-sub":
			bench.RedisSubMain(os.Args[2:])
			return
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "rtm:", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "run 'rtm --help' for usage")
		os.Exit(2)
	}
	os.Exit(1)
}

type env struct {
	socket  string
	trust   []uint32      // --trust-uid, $RTM_TRUST_UID
	timeout time.Duration // --timeout
	connect string        // host:port of rtmd's TCP listener
	via     string        // "mq" to send through the queue
	mq      string
	json    bool
	oneline bool   // -o
	family  int    // -4, -6
	batch   string // --batch FILE
	force   bool   // --force
	stdin   io.Reader
	stdout  *bufio.Writer
	out     output // under stdout

	timedOut atomic.Bool   // a request's --timeout ran out
	limit    time.Duration // the limit that ran out

	rc      *client.Conn // the connection for requests, dialled once
	ignored ignoredWords // words of routes that rtm does not keep
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	e := &env{timeout: 10 * time.Second, stdin: stdin, out: output{w: stdout}}
	e.stdout = bufio.NewWriterSize(&e.out, 64<<10)
	defer e.stdout.Flush()
	var err error
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		switch {
		case a == "-s" || a == "--socket" || a == "-socket":
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs a PATH", a)}
			}
			e.socket, args = args[0], args[1:]
		case strings.HasPrefix(a, "--socket="):
			e.socket = strings.TrimPrefix(a, "--socket=")
		case a == "--timeout" || a == "-timeout" || strings.HasPrefix(a, "--timeout="):
			var v string
			if v, args, err = flagValue(a, args); err != nil {
				return err
			}
			if e.timeout, err = time.ParseDuration(v); err != nil || e.timeout < 0 {
				return usageError{fmt.Errorf("--timeout %q: want a duration such as 500ms, 10s or 0 (no limit)", v)}
			}
		case a == "--trust-uid" || a == "-trust-uid" || strings.HasPrefix(a, "--trust-uid="):
			var v string
			if v, args, err = flagValue(a, args); err != nil {
				return err
			}
			uid, err := parseUID(v)
			if err != nil {
				return usageError{fmt.Errorf("--trust-uid: %w", err)}
			}
			e.trust = append(e.trust, uid)
		case a == "--connect" || a == "-connect" || a == "--via" || a == "-via" || a == "--mq" || a == "-mq":
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs a value", a)}
			}
			switch strings.TrimLeft(a, "-") {
			case "connect":
				e.connect = args[0]
			case "via":
				if args[0] != "mq" && args[0] != "socket" {
					return usageError{fmt.Errorf("--via %q: want mq or socket", args[0])}
				}
				e.via = args[0]
			case "mq":
				e.mq = args[0]
			}
			args = args[1:]
		case a == "-j" || a == "--json" || a == "-json":
			e.json = true
		case a == "-o" || a == "--oneline" || a == "-oneline":
			e.oneline = true
		case a == "-4" || a == "-6":
			e.family = int(a[1] - '0')
		case a == "-b" || a == "--batch" || a == "-batch" || strings.HasPrefix(a, "--batch=") || strings.HasPrefix(a, "-batch="):
			if e.batch, args, err = flagValue(a, args); err != nil {
				return err
			}
		case a == "--force" || a == "-force":
			e.force = true
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprint(e.stdout, usage, indent(command.Usage))
			return nil
		default:
			return usageError{fmt.Errorf("unknown global flag %q", a)}
		}
	}
	if v := os.Getenv("RTM_TRUST_UID"); v != "" {
		for _, f := range strings.Split(v, ",") {
			uid, err := parseUID(strings.TrimSpace(f))
			if err != nil {
				return usageError{fmt.Errorf("$RTM_TRUST_UID: %w", err)}
			}
			e.trust = append(e.trust, uid)
		}
	}
	if e.force && e.batch == "" {
		return usageError{errors.New("--force goes with --batch")}
	}
	if e.batch != "" && e.via == "mq" {
		return usageError{errors.New("--batch sends over the socket; --via mq takes one command (a queue message may hold many lines)")}
	}
	defer e.ignored.report()
	defer e.closeConn()
	if e.batch != "" {
		if len(args) > 0 {
			return usageError{fmt.Errorf("--batch %s: unexpected command %q (the commands are in the file)", e.batch, args[0])}
		}
		return e.runBatch(ctx)
	}
	if len(args) > 0 && args[0] == "bench" {
		return e.benchCmd(ctx, args[1:])
	}
	e.limit = e.timeout
	return e.explain(e.exec(ctx, args))
}

// exec runs the command in args, other than bench.
func (e *env) exec(ctx context.Context, args []string) error {
	cmd, err := command.Options{Family: e.family}.Parse(args)
	if err != nil {
		return usageError{err}
	}
	if err := e.needSocket(cmd); err != nil {
		return err
	}
	if e.via == "mq" {
		return e.sendQueue(ctx, cmd, args)
	}
	return e.do(ctx, cmd)
}

// needSocket finds the default socket if none was given and cmd needs one.
func (e *env) needSocket(cmd command.Command) error {
	if e.socket != "" || cmd.Verb == command.Help {
		return nil
	}
	var err error
	// --connect, and --via mq with --mq, need no socket.
	if e.socket, err = client.DefaultSocket(); err != nil && e.connect == "" && (e.via != "mq" || e.mq == "") {
		return err
	}
	return nil
}

// do runs one parsed command. Requests go over e.rc, dialled once, so
// that a batch of commands shares one connection.
func (e *env) do(ctx context.Context, cmd command.Command) error {
	cmd.JSON = cmd.JSON || e.json
	cmd.Oneline = cmd.Oneline || e.oneline
	switch cmd.Verb {
	case command.Help:
		fmt.Fprint(e.stdout, usage, indent(command.Usage))
		return nil
	case command.Monitor:
		return e.monitor(ctx, cmd)
	case command.Client:
		return e.clientMenu(ctx)
	case command.RouteLoad:
		return e.load(ctx, cmd.File)
	case command.RouteShow:
		return e.show(ctx, cmd)
	case command.Save:
		return e.save(ctx, cmd.File)
	case command.MACShow, command.MACGet, command.MACLoad:
		return e.macCommand(ctx, cmd)
	}
	c, err := e.reqConn(ctx)
	if err != nil {
		return err
	}
	ctx, done := e.request(ctx, 1)
	defer done()
	switch cmd.Verb {
	case command.RouteAdd, command.RouteChange, command.RouteReplace:
		r := publicRoute(&cmd.Route)
		switch cmd.Verb {
		case command.RouteAdd:
			_, err = c.Add(ctx, r)
		case command.RouteChange:
			_, err = c.Change(ctx, r)
		default:
			_, err = c.Replace(ctx, r)
		}
		return err
	case command.RouteDel:
		_, err = c.DeleteMatching(ctx, publicSelector(cmd.Sel))
		return err
	case command.RouteFlush:
		_, _, err = c.FlushRoutes(ctx, publicSelector(cmd.Sel))
		return err
	case command.Flush:
		_, err = c.Flush(ctx)
		return err
	case command.MACAdd:
		_, err = c.AddMAC(ctx, client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
		return err
	case command.MACChange:
		_, err = c.ChangeMAC(ctx, client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
		return err
	case command.MACReplace:
		_, err = c.ReplaceMAC(ctx, client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
		return err
	case command.MACDel:
		_, err = c.DeleteMAC(ctx, cmd.MAC)
		return err
	case command.Status:
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		command.PrintStatus(e.stdout, st, cmd.JSON)
		return nil
	case command.Clients:
		list, err := c.Clients(ctx)
		if err != nil {
			return err
		}
		printClients(e.stdout, list, cmd.JSON)
		return nil
	case command.RouteGet:
		r, err := c.Get(ctx, cmd.Table, cmd.Addr)
		if errors.Is(err, client.ErrNotFound) {
			// Not an error of rtmd's: say it plainly, exit 1.
			return fmt.Errorf("no route to %v", cmd.Addr)
		}
		if err != nil {
			return err
		}
		// ip route get -j prints an array too.
		rw := command.RouteWriter{W: e.stdout, JSON: cmd.JSON, Oneline: cmd.Oneline}
		rw.Route(internalRoute(r))
		return rw.Close()
	}
	return fmt.Errorf("%v: not implemented", cmd.Verb)
}

func (e *env) network() string {
	if e.connect != "" {
		return "tcp"
	}
	return "unix"
}

func (e *env) address() string {
	if e.connect != "" {
		return e.connect
	}
	return e.socket
}

// dialer returns a Dialer named name that trusts --trust-uid and waits
// --timeout.
func (e *env) dialer(name string) client.Dialer {
	return client.Dialer{Name: name, TrustUIDs: e.trust, Timeout: e.timeout}
}

func (e *env) dial(ctx context.Context) (*client.Conn, error) {
	d := e.dialer("")
	return d.Dial(ctx, e.network(), e.address())
}

// reqConn returns the connection for requests, dialling it the first
// time.
func (e *env) reqConn(ctx context.Context) (*client.Conn, error) {
	if e.rc == nil {
		c, err := e.dial(ctx)
		if err != nil {
			return nil, err
		}
		e.rc = c
	}
	return e.rc, nil
}

func (e *env) closeConn() {
	if e.rc != nil {
		e.rc.Close()
		e.rc = nil
	}
}

// sendQueue sends a change through rtmd's message queue, as one message of
// one line, and returns once it is queued.
func (e *env) sendQueue(ctx context.Context, cmd command.Command, words []string) error {
	if !cmd.Verb.IsMutation() || cmd.Verb == command.RouteLoad || cmd.Verb == command.MACLoad {
		return usageError{fmt.Errorf("--via mq: %v cannot go through the queue (route add, change, replace, del and flush, mac add, change, replace and del, and flush all can)", cmd.Verb)}
	}
	name := e.mq
	if name == "" {
		name = "/" + shm.DefaultName(e.socket)
	}
	q, err := mq.Open(name, os.O_WRONLY, 0, nil)
	if errors.Is(err, os.ErrNotExist) {
		return e.noQueue(ctx, name, err)
	}
	if err != nil {
		return err
	}
	defer q.Close()
	q.SetWriteDeadline(time.Now().Add(5 * time.Second))
	line := strings.Join(words, " ")
	if e.family != 0 {
		line = fmt.Sprintf("-%d %s", e.family, line) // rtmd reads -4 and -6 too
	}
	return q.Send([]byte(line), 0)
}

// noQueue explains a missing queue: rtmd runs without one (-mq off) or
// under another name, or is not running on this socket.
func (e *env) noQueue(ctx context.Context, name string, err error) error {
	c, derr := e.dial(ctx)
	if derr != nil {
		return fmt.Errorf("%w (is rtmd running, with this socket or -mq name? %v)", err, derr)
	}
	defer c.Close()
	st, serr := c.Status(ctx)
	switch {
	case serr != nil:
		return fmt.Errorf("%w (status of rtmd at %s: %v)", err, e.socket, serr)
	case st.Queue == "":
		return fmt.Errorf("--via mq: rtmd at %s runs without a message queue (rtmd -mq off); send the change over the socket: drop --via mq", e.socket)
	}
	return fmt.Errorf("%w (rtmd at %s reads the queue %s: pass --mq %s)", err, e.socket, st.Queue, st.Queue)
}

func printClients(w io.Writer, list []client.ClientInfo, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(list, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "%-4s %-8s %-6s %-16s %-20s %-4s %-10s %-10s %-8s %s\n",
		"ID", "PID", "UID", "NAME", "SINCE", "REG", "DELIVERED", "ACKED", "BACKLOG", "RESYNCS")
	for _, c := range list {
		reg := "-"
		if c.Registered {
			reg = "yes"
		}
		fmt.Fprintf(w, "%-4d %-8d %-6d %-16.16s %-20s %-4s %-10d %-10d %-8d %d\n",
			c.ID, c.PID, c.UID, c.Name, c.Since, reg, c.Delivered, c.Acked, c.Backlog, c.Resyncs)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

// printRoute prints one route as `rtm route show` does.
func (e *env) printRoute(r client.Route) {
	e.stdout.Write(append(internalRoute(r).AppendText(nil), '\n'))
}

// save writes every route to file, whole or not at all: a temporary file
// in its directory, renamed over it once written and synced. It replaces
// only a regular file, and keeps its mode (a new file is made 0600).
func (e *env) save(ctx context.Context, file string) (err error) {
	mode := fs.FileMode(0o600)
	if st, err := os.Lstat(file); err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("save %s: it is a %s, not a regular file; give a file name", file, state.FileKind(st.Mode()))
		}
		mode = st.Mode().Perm()
	}
	c, ctx, done, err := e.snapshotConn(ctx)
	if err != nil {
		return err
	}
	defer done()
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriter(f)
	rw := command.RouteWriter{W: w}
	n := 0
	seq, err := c.Snapshot(ctx, func(p client.Route) {
		rw.Route(internalRoute(p))
		n++
	})
	if err == nil {
		err = rw.Close()
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	fmt.Fprintf(e.stdout, "saved %d routes at sequence %d to %s\n", n, seq, file)
	return nil
}

// show prints the routes that cmd.Sel picks. It subscribes for a snapshot
// on a connection of its own, since the subscription stays on it.
func (e *env) show(ctx context.Context, cmd command.Command) error {
	c, ctx, done, err := e.snapshotConn(ctx)
	if err != nil {
		return err
	}
	defer done()
	rw := command.RouteWriter{W: e.stdout, JSON: cmd.JSON, Oneline: cmd.Oneline}
	sel := cmd.Sel
	_, err = c.Snapshot(ctx, func(p client.Route) {
		r := internalRoute(p)
		if sel.Select(&r) {
			rw.Route(r)
		}
	})
	if err != nil {
		return err
	}
	return rw.Close()
}
