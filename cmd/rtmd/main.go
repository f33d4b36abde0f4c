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
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/server"
	"github.com/rtm-project/rtm/internal/state"
)

func main() {
	fs := flag.NewFlagSet("rtmd", flag.ExitOnError)
	defaultSocket, noSocket := client.DaemonSocket()
	socket := fs.String("socket", defaultSocket, "Unix socket `path` (default: $RTM_SOCKET, else /run/rtm/rtm.sock as root, else $XDG_RUNTIME_DIR/rtm.sock)")
	backlog := fs.Int("backlog", server.DefaultBacklog, "`bytes` queued for one client before it is resent the table instead")
	shmName := fs.String("shm", "", "base `name` of the MAC table's shared memory objects in /dev/shm (default: rtm- and a hash of the socket path)")
	macCap := fs.Int("mac-capacity", server.DefaultMACCap, "initial `records` of the MAC segment; it doubles when full")
	group := fs.String("group", "", "a `group` (name or gid) whose members may connect and change the tables, besides root and rtmd's own uid: the socket, the queue and the MAC segment get that group (socket 0660, queue 0620, segment 0640, so members read MAC values too); without it the socket has rtmd's group, whose members may only subscribe, and the queue is 0600")
	mqName := fs.String("mq", "", "the command message queue's `name`, /NAME, or off for none (default: / and the shared memory base name); 8 messages of 4096 bytes, about 33 KiB of the user's RLIMIT_MSGQUEUE")
	listen := fs.String("listen", "", "TCP `address` (e.g. 127.0.0.1:7400) for read-only subscribers; no encryption or authentication: loopback or a trusted network only")
	var compatSocks stringList
	fs.Var(&compatSocks, "compat-socket", "also serve classic C clients of a fixed-size record (docs/protocol.md) on the Unix socket `path[:layout]`, read-only; repeat it for several sockets; the layout is "+compat.Names()+" (default: -compat-layout)")
	compatLayout := fs.String("compat-layout", compat.Layouts[0].Name, "the record `layout` of each -compat-socket given without one: "+compat.Names())
	var lim server.Limits
	fs.IntVar(&lim.Conns, "max-conns", server.DefaultConns, "Unix socket connections in all; more are refused, except from peers that may change the tables (held to -max-conns-per-uid only)")
	fs.IntVar(&lim.ConnsPerUID, "max-conns-per-uid", server.DefaultConnsPerUID, "Unix socket connections of one uid")
	fs.IntVar(&lim.TCPConns, "max-tcp-conns", server.DefaultTCPConns, "TCP connections in all")
	fs.IntVar(&lim.TCPConnsPerAddr, "max-tcp-conns-per-addr", server.DefaultTCPConnsPerAddr, "TCP connections from one IP address")
	fs.IntVar(&lim.CompatConns, "max-compat-conns", server.DefaultCompatConns, "compat socket connections in all")
	fs.Int64Var(&lim.StagedBytes, "max-staged", server.DefaultStagedBytes, "`bytes` of loads that all connections together may have staged before their final chunk; a load past it is refused")
	fs.DurationVar(&lim.WriteTimeout, "write-timeout", server.DefaultWriteTimeout, "how long a client may take to read its snapshot, or one batch of its backlog; past it the client is dropped")
	stateDir := fs.String("state", "", "the state `dir`ectory: rtmd keeps its tables and sequence number there across restarts, every change fsynced before it is acknowledged (docs/state.md); none keeps them in memory only (default: /var/lib/rtm as root, else $XDG_STATE_HOME/rtm or ~/.local/state/rtm)")
	resumeWindow := fs.Int("resume-window", server.DefaultResumeWindow, "`bytes` of the latest changes rtmd keeps (and reads back from its journal at start) so that a subscriber that reconnects gets only what it missed; one further behind gets the table")
	compactMin := fs.Int64("state-compact", server.DefaultCompactMin, "`bytes` the journal grows to at least before rtmd writes a snapshot and drops it (it waits for 4 times the last snapshot's size)")
	stateRepair := fs.Bool("state-repair", false, "start from the valid part of a damaged state journal, logging what is lost (without it rtmd refuses to start on damage other than a torn last record)")
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
	compatCfg, err := compatSockets(compatSocks, *compatLayout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtmd:", err)
		os.Exit(2)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"-resume-window", int64(*resumeWindow)}, {"-state-compact", *compactMin}} {
		if f.v <= 0 {
			fmt.Fprintf(os.Stderr, "rtmd: %s %d: want a positive number of bytes\n", f.name, f.v)
			os.Exit(2)
		}
	}
	switch *stateDir {
	case "none":
		*stateDir = ""
	case "":
		if *stateDir, err = state.DefaultPath(); err != nil {
			fmt.Fprintln(os.Stderr, "rtmd:", err)
			os.Exit(2)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

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
	// Signals are caught before rtmd makes anything, so that a stop that
	// comes while it starts still removes what it made. SIGHUP (the
	// terminal went away) stops rtmd cleanly too. A read of the terminal
	// from the background gets EIO instead of stopping rtmd.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU)
	s, err := server.New(server.Config{Socket: *socket, Backlog: *backlog, SHM: *shmName, MACCap: *macCap, Group: *group, MQ: *mqName, Listen: *listen, Compat: compatCfg, State: *stateDir, StateRepair: *stateRepair, ResumeWindow: *resumeWindow, CompactMin: *compactMin, Limits: lim, Version: server.Version, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtmd:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	interactive := inForeground(os.Stdin)
	if (*console || interactive) && !*noConsole {
		go s.Console(ctx, os.Stdin, os.Stdout, interactive, stop)
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "rtmd:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// inForeground reports whether f is a terminal and rtmd is in its
// foreground process group: only then is the console rtmd's to read. Started
// in the background from a shell, rtmd leaves the terminal alone.
func inForeground(f *os.File) bool {
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return false
	}
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// compatSockets reads the -compat-socket values: PATH, or PATH:LAYOUT when
// what follows the last colon names a layout; a PATH alone takes the
// layout def.
func compatSockets(specs []string, def string) ([]server.CompatSocket, error) {
	defLayout, err := compat.LayoutByName(def)
	if err != nil {
		return nil, fmt.Errorf("-compat-layout: %w", err)
	}
	var out []server.CompatSocket
	seen := map[string]bool{}
	for _, spec := range specs {
		cs := server.CompatSocket{Path: spec, Layout: defLayout}
		if i := strings.LastIndexByte(spec, ':'); i >= 0 {
			if l, err := compat.LayoutByName(spec[i+1:]); err == nil {
				cs = server.CompatSocket{Path: spec[:i], Layout: l}
			}
		}
		switch {
		case cs.Path == "":
			return nil, fmt.Errorf("-compat-socket %q: empty path", spec)
		case seen[filepath.Clean(cs.Path)]:
			return nil, fmt.Errorf("-compat-socket %q: %s given twice", spec, cs.Path)
		}
		seen[filepath.Clean(cs.Path)] = true
		out = append(out, cs)
	}
	return out, nil
}
