// Package command parses the rtm command grammar: the words after `rtm` and
// its global flags, as typed on the command line, on rtmd's console, or
// (later) sent through the message queue. It is iproute2-like: an object
// ("route"), a verb, and arguments; verbs may be abbreviated to a unique
// prefix ("r sh" is "route show").
package command

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
)

// Verb says what a Command does.
type Verb int

// The verbs.
const (
	RouteAdd Verb = iota + 1
	RouteChange
	RouteReplace
	RouteDel
	RouteLoad
	RouteShow
	RouteGet
	Monitor
	Client
	Help
	MACAdd
	MACChange
	MACReplace
	MACDel
	MACLoad
	MACShow
	MACGet
	Flush
	Clients
	Status
)

var verbNames = map[Verb]string{
	RouteAdd: "route add", RouteChange: "route change", RouteReplace: "route replace",
	RouteDel: "route del", RouteLoad: "route load", RouteShow: "route show",
	RouteGet: "route get", Monitor: "monitor", Client: "client", Help: "help",
	MACAdd: "mac add", MACChange: "mac change", MACReplace: "mac replace", MACDel: "mac del",
	MACLoad: "mac load", MACShow: "mac show", MACGet: "mac get",
	Flush: "flush", Clients: "clients", Status: "status",
}

func (v Verb) String() string { return verbNames[v] }

// IsMutation reports whether v changes a table.
func (v Verb) IsMutation() bool {
	switch v {
	case RouteAdd, RouteChange, RouteReplace, RouteDel, RouteLoad,
		MACAdd, MACChange, MACReplace, MACDel, MACLoad, Flush:
		return true
	}
	return false
}

// Command is one parsed command.
type Command struct {
	Verb   Verb
	Route  route.Route    // add, change, replace
	Sel    route.Selector // del, show, flush
	Table  uint32         // get: the table to look in
	Addr   netip.Addr     // route get; the IP of mac add, change, replace
	MAC    mac.Addr       // the mac commands
	Dev    string         // mac add, change, replace: the interface, or ""
	File   string         // load: a path, or "-" for stdin
	JSON   bool           // -j on show, get, monitor
	Follow bool           // --follow on monitor
}

// Usage is the grammar, for help texts.
const Usage = `route add PREFIX via GATEWAY dev OIF      add a route; fails if PREFIX exists
route change PREFIX via GATEWAY dev OIF   change a route; fails if PREFIX does not exist
route replace PREFIX via GATEWAY dev OIF  add or change a route
route del PREFIX                          delete a route; fails if PREFIX does not exist
route load FILE|-                         replace many routes ("route show" lines) as one batch
route show [-j]                           print the routing table
route get ADDR [-j]                       print the longest-prefix match for ADDR
mac add MAC IP                            add a MAC entry; fails if MAC exists
mac change MAC IP                         change a MAC entry; fails if MAC does not exist
mac replace MAC IP                        add or change a MAC entry
mac del MAC                               delete a MAC entry
mac load FILE|-                           replace many MAC entries ("mac show" lines) as one batch
mac show [-j]                             print the MAC table, IPs read from shared memory
mac get MAC [-j]                          print MAC's IP, read from shared memory
flush                                     empty both tables; registered clients get SIGUSR1
clients [-j]                              list the connected clients
status [-j]                               rtmd's version, uptime, sequence, sizes, inputs
bench [-j] [-routes N] [-clients N] [...]  measure rtm against the IPC limit, the kernel, Redis
monitor [-j] [--follow]                   print the tables, then every change
client                                    keep a local copy and open its menu
help                                      print this text`

var objects = []string{"route", "mac", "monitor", "client", "clients", "flush", "status", "help"}

var macVerbs = []string{"add", "change", "replace", "del", "delete", "load", "show", "list", "get"}

var routeVerbs = []string{"add", "change", "replace", "del", "delete", "load", "show", "list", "get"}

// match returns the one word in words that w abbreviates.
func match(what, w string, words []string) (string, error) {
	var found []string
	for _, c := range words {
		if c == w {
			return c, nil
		}
		if strings.HasPrefix(c, w) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("unknown %s %q (want one of: %s)", what, w, strings.Join(words, ", "))
	}
	return "", fmt.Errorf("ambiguous %s %q: %s", what, w, strings.Join(found, ", "))
}

// Parse parses the words of one command.
func Parse(args []string) (Command, error) {
	if len(args) == 0 {
		return Command{}, errors.New("missing command (try help)")
	}
	obj, err := match("command", args[0], objects)
	if err != nil {
		return Command{}, err
	}
	args = args[1:]
	switch obj {
	case "help":
		return Command{Verb: Help}, noArgs(args)
	case "client":
		return Command{Verb: Client}, noArgs(args)
	case "flush":
		return Command{Verb: Flush}, noArgs(args)
	case "clients":
		j, err := jsonFlag(args)
		return Command{Verb: Clients, JSON: j}, err
	case "status":
		j, err := jsonFlag(args)
		return Command{Verb: Status, JSON: j}, err
	case "monitor":
		var c Command
		c.Verb = Monitor
		for _, a := range args {
			switch a {
			case "-j", "-json", "--json":
				c.JSON = true
			case "-follow", "--follow":
				c.Follow = true
			default:
				return Command{}, fmt.Errorf("monitor: unknown argument %q", a)
			}
		}
		return c, nil
	}
	if obj == "mac" {
		return parseMAC(args)
	}
	if len(args) == 0 {
		return Command{Verb: RouteShow}, nil
	}
	verb, err := match("route command", args[0], routeVerbs)
	if err != nil {
		return Command{}, err
	}
	args = args[1:]
	var c Command
	switch verb {
	case "add", "change", "replace":
		c.Verb = map[string]Verb{"add": RouteAdd, "change": RouteChange, "replace": RouteReplace}[verb]
		c.Route, err = route.ParseFields(args)
		if err != nil {
			return Command{}, fmt.Errorf("route %s: %w", verb, err)
		}
	case "del", "delete":
		c.Verb = RouteDel
		if len(args) == 0 {
			return Command{}, errors.New("route del: missing PREFIX")
		}
		c.Sel = route.Selector{Table: route.TableMain, Mode: route.Exact}
		if c.Sel.Prefix, err = route.ParsePrefix(args[0]); err != nil {
			return Command{}, fmt.Errorf("route del: %w", err)
		}
		if err := noArgs(args[1:]); err != nil {
			return Command{}, fmt.Errorf("route del: %w", err)
		}
	case "load":
		c.Verb = RouteLoad
		if len(args) != 1 {
			return Command{}, errors.New("route load: want one FILE, or - for stdin")
		}
		c.File = args[0]
	case "show", "list":
		c.Verb = RouteShow
		if c.JSON, err = jsonFlag(args); err != nil {
			return Command{}, fmt.Errorf("route show: %w", err)
		}
	case "get":
		c.Verb = RouteGet
		if len(args) == 0 {
			return Command{}, errors.New("route get: missing ADDR")
		}
		if c.Addr, err = route.ParseAddr("address", args[0]); err != nil {
			return Command{}, fmt.Errorf("route get: %w", err)
		}
		if c.JSON, err = jsonFlag(args[1:]); err != nil {
			return Command{}, fmt.Errorf("route get: %w", err)
		}
	}
	return c, nil
}

func parseMAC(args []string) (Command, error) {
	if len(args) == 0 {
		return Command{Verb: MACShow}, nil
	}
	verb, err := match("mac command", args[0], macVerbs)
	if err != nil {
		return Command{}, err
	}
	args = args[1:]
	var c Command
	needMAC := func() error {
		if len(args) == 0 {
			return fmt.Errorf("mac %s: missing MAC", verb)
		}
		c.MAC, err = mac.Parse(args[0])
		if err != nil {
			return fmt.Errorf("mac %s: %w", verb, err)
		}
		args = args[1:]
		return nil
	}
	switch verb {
	case "add", "change", "replace":
		c.Verb = map[string]Verb{"add": MACAdd, "change": MACChange, "replace": MACReplace}[verb]
		if err := needMAC(); err != nil {
			return Command{}, err
		}
		if len(args) == 0 {
			return Command{}, fmt.Errorf("mac %s: missing IP", verb)
		}
		if c.Addr, err = route.ParseAddr("ip", args[0]); err != nil {
			return Command{}, fmt.Errorf("mac %s: %w", verb, err)
		}
		if err := noArgs(args[1:]); err != nil {
			return Command{}, fmt.Errorf("mac %s: %w", verb, err)
		}
	case "del", "delete":
		c.Verb = MACDel
		if err := needMAC(); err != nil {
			return Command{}, err
		}
		if err := noArgs(args); err != nil {
			return Command{}, fmt.Errorf("mac del: %w", err)
		}
	case "load":
		c.Verb = MACLoad
		if len(args) != 1 {
			return Command{}, errors.New("mac load: want one FILE, or - for stdin")
		}
		c.File = args[0]
	case "show", "list":
		c.Verb = MACShow
		if c.JSON, err = jsonFlag(args); err != nil {
			return Command{}, fmt.Errorf("mac show: %w", err)
		}
	case "get":
		c.Verb = MACGet
		if err := needMAC(); err != nil {
			return Command{}, err
		}
		if c.JSON, err = jsonFlag(args); err != nil {
			return Command{}, fmt.Errorf("mac get: %w", err)
		}
	}
	return c, nil
}

// ParseMACLine parses one line of `rtm mac show` output: "MAC IP".
func ParseMACLine(line string) (mac.Addr, netip.Addr, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return mac.Addr{}, netip.Addr{}, fmt.Errorf("want \"MAC IP\", got %d fields", len(f))
	}
	m, err := mac.Parse(f[0])
	if err != nil {
		return mac.Addr{}, netip.Addr{}, err
	}
	ip, err := route.ParseAddr("ip", f[1])
	return m, ip, err
}

// ParseLine parses one command line, as typed on a console.
func ParseLine(line string) (Command, error) {
	return Parse(strings.Fields(line))
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

func jsonFlag(args []string) (bool, error) {
	j := false
	for _, a := range args {
		switch a {
		case "-j", "-json", "--json":
			j = true
		default:
			return false, fmt.Errorf("unexpected argument %q", a)
		}
	}
	return j, nil
}
