// Command rtmd is the rtm daemon: it owns the routing table and keeps every
// subscribed client identical to it. See README.md and docs/.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/server"
)

func main() {
	fs := flag.NewFlagSet("rtmd", flag.ExitOnError)
	defaultSocket, noSocket := client.DaemonSocket()
	socket := fs.String("socket", defaultSocket, "Unix socket `path` (default: $RTM_SOCKET, else /run/rtm/rtm.sock as root, else $XDG_RUNTIME_DIR/rtm.sock)")
	backlog := fs.Int("backlog", server.DefaultBacklog, "`bytes` queued for one client before it is resent the table instead")
	shmName := fs.String("shm", "", "base `name` of the MAC table's shared memory objects in /dev/shm (default: rtm- and a hash of the socket path)")
	macCap := fs.Int("mac-capacity", server.DefaultMACCap, "initial `records` of the MAC segment; it doubles when full")
	group := fs.String("group", "", "a `group` whose members may change the tables over the socket, besides root and rtmd's own uid (anyone who can open the socket may subscribe)")
	mqName := fs.String("mq", "", "the command message queue's `name`, /NAME (default: / and the shared memory base name)")
	listen := fs.String("listen", "", "TCP `address` (e.g. 127.0.0.1:7400) for read-only subscribers; no encryption or authentication: loopback or a trusted network only")
	compatSock := fs.String("compat-socket", "", "also serve classic clients of the 72-byte route record (docs/protocol.md) on the Unix socket `path`; read-only")
	console := fs.Bool("console", false, "read admin commands from stdin even when it is not a terminal")
	noConsole := fs.Bool("no-console", false, "do not read stdin, even when it is a terminal")
	verbose := fs.Bool("v", false, "log debug messages")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `file` until rtmd stops")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rtmd [flags]\n\nrtmd owns the routing table and keeps every client identical to it.\nFlags take one dash or two (-socket or --socket).\n\n")
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rtmd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "rtmd:", cmp.Or(noSocket, errors.New("-socket: empty path")))
		os.Exit(2)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	s, err := server.New(server.Config{Socket: *socket, Backlog: *backlog, SHM: *shmName, MACCap: *macCap, Group: *group, MQ: *mqName, Listen: *listen, Compat: *compatSock, Version: server.Version, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtmd:", err)
		os.Exit(1)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "rtmd:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interactive := isTerminal(os.Stdin)
	if (*console || interactive) && !*noConsole {
		go s.Console(ctx, os.Stdin, os.Stdout, interactive, stop)
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "rtmd:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
