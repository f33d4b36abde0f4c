// Package command parses the rtm command grammar: the words after `rtm` and
// its global flags, as typed on the command line, in a batch file (rtm
// -batch), on rtmd's console, or sent through the message queue. It is
// iproute2's: an object ("route"), a verb, and arguments, with the route
// words of `ip route` (read by the route package's parser) and the
// selectors of `ip route show` and `ip route flush`.
//
// Verbs may be abbreviated to a unique prefix ("r sh" is "route show"),
// except the destructive ones: "flush" is always spelt out, and the flush of
// both tables takes "all" as well ("rtm flush all").
//
// Parsing has no state: the functions are safe for concurrent use.
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
	RouteFlush
	Save
)

var verbNames = map[Verb]string{
	RouteAdd: "route add", RouteChange: "route change", RouteReplace: "route replace",
	RouteDel: "route del", RouteLoad: "route load", RouteShow: "route show",
	RouteGet: "route get", RouteFlush: "route flush", Monitor: "monitor", Client: "client", Help: "help",
	MACAdd: "mac add", MACChange: "mac change", MACReplace: "mac replace", MACDel: "mac del",
	MACLoad: "mac load", MACShow: "mac show", MACGet: "mac get",
	Flush: "flush all", Clients: "clients", Status: "status", Save: "save",
}

func (v Verb) String() string { return verbNames[v] }

// IsMutation reports whether v changes a table.
func (v Verb) IsMutation() bool {
	switch v {
	case RouteAdd, RouteChange, RouteReplace, RouteDel, RouteLoad, RouteFlush,
		MACAdd, MACChange, MACReplace, MACDel, MACLoad, Flush:
		return true
	}
	return false
}

// Command is one parsed command.
type Command struct {
	Verb    Verb
	Route   route.Route    // route add, change, replace
	Sel     route.Selector // route del (an exact prefix), show, flush
	Table   uint32         // route get: the table to look in
	Addr    netip.Addr     // route get; the IP of mac add, change, replace
	MAC     mac.Addr       // the mac commands
	Dev     string         // mac add, change, replace: the interface, or ""
	File    string         // load: a path, or "-" for stdin
	JSON    bool           // -j on show, get, clients, status, monitor
	Oneline bool           // -o on route show: a multipath route on one line
	Follow  bool           // --follow on monitor
}

// Usage is the grammar, for help texts.
const Usage = `route add ROUTE                 add a route; fails if its table has PREFIX
route change ROUTE              change a route; fails if its table has no PREFIX
route replace ROUTE             add or change a route
  ROUTE := [TYPE] PREFIX|default [via [inet6] GW] [dev IF] [table T] [proto P]
           [metric M] [src ADDR] [nexthop [via GW] [dev IF] [weight W]]...
  TYPE := unicast|blackhole|unreachable|prohibit|local|throw
route del PREFIX [table T] [via GW] [dev IF] [proto P] [type T] [metric M]
                                delete PREFIX if it has what is named
route get ADDR [table T] [-j]   print the route a lookup of ADDR chooses
route show [SELECTOR] [-j] [-o] print routes as ip route show (table main
                                unless given; -o: one line each, for ip -batch)
route flush SELECTOR            delete the routes SELECTOR picks (at least one word)
  SELECTOR := [PREFIX | root P | match ADDR | exact P] [table T|all] [dev IF]
              [via GW] [proto P] [type T] [metric M]
route load FILE|-               replace many routes ("ip route show" lines) as one batch
mac add MAC IP [dev IF]         add a MAC entry; fails if MAC exists
mac change MAC IP [dev IF]      change a MAC entry; fails if MAC does not exist
mac replace MAC IP [dev IF]     add or change a MAC entry
mac del MAC                     delete a MAC entry
mac load FILE|-                 replace many MAC entries ("mac show" lines) as one batch
mac show [-j]                   print the MAC table, IPs read from shared memory
mac get MAC [-j]                print MAC's IP, read from shared memory
flush all                       empty both tables; registered clients get SIGUSR1
clients [-j]                    list the connected clients
status [-j]                     rtmd's version, uptime, sequence, sizes, inputs,
                                state directory
save FILE                       write every route, of all tables, to FILE as
                                route show prints them (route load reads it)
bench [-j] [-routes N] [...]    measure rtm against the IPC limit, the kernel, Redis
monitor [-j] [--follow]         print the tables, then every change
client                          keep a local copy and open its menu
help                            print this text
-4 or -6 before a command reads "default" as 0.0.0.0/0 or ::/0, and limits
route show and route flush to that family.
Words may be abbreviated ("r sh" is "route show"), but flush is spelt out.`

var objects = []string{"route", "mac", "monitor", "client", "clients", "flush", "status", "save", "help"}

var routeVerbs = []string{"add", "change", "replace", "del", "delete", "load", "show", "list", "get", "flush"}

var macVerbs = []string{"add", "change", "replace", "del", "delete", "load", "show", "list", "get"}

// spelt are the words that are never reached by abbreviation: they destroy.
var spelt = map[string]bool{"flush": true}

// match returns the one word in words that w abbreviates.
func match(what, w string, words []string) (string, error) {
	var found []string
	for _, c := range words {
		if c == w {
			return c, nil
		}
		if strings.HasPrefix(c, w) && !spelt[c] {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		for _, c := range words {
			if spelt[c] && strings.HasPrefix(c, w) {
				return "", fmt.Errorf("%s %q: %s is never abbreviated; spell it out", what, w, c)
			}
		}
		return "", fmt.Errorf("unknown %s %q (want one of: %s)", what, w, strings.Join(words, ", "))
	}
	return "", fmt.Errorf("ambiguous %s %q: %s", what, w, strings.Join(found, ", "))
}

// Options says how to read what a command leaves open. The zero value reads
// as rtm without -4 or -6.
type Options struct {
	// Family is 4 or 6 as ip's -4 and -6: "default" means 0.0.0.0/0 or
	// ::/0, and a prefix of the other family is refused.
	Family int
}

// Parse parses the words of one command.
func Parse(args []string) (Command, error) { return Options{}.Parse(args) }

// ParseLine parses one command line, as typed on a console or written in a
// batch file. A line that adds, changes or replaces a route is read by the
// route parser's fast path, without splitting it into words first.
func ParseLine(line string) (Command, error) { return Options{}.ParseLine(line) }

// ParseLine parses one command line (see the function ParseLine).
func (o Options) ParseLine(line string) (Command, error) {
	if c, ok, err := o.fastRoute(line); ok {
		return c, err
	}
	return o.Parse(strings.Fields(line))
}

// fastRoute parses "route add|change|replace ROUTE" (verbs abbreviated or
// not) straight from the line. ok is false for any other line.
func (o Options) fastRoute(line string) (c Command, ok bool, err error) {
	obj, rest := firstWord(line)
	if obj == "" || !strings.HasPrefix("route", obj) {
		return Command{}, false, nil
	}
	verb, rest := firstWord(rest)
	v, err := match("route command", verb, routeVerbs)
	if err != nil {
		return Command{}, false, nil
	}
	switch v {
	case "add":
		c.Verb = RouteAdd
	case "change":
		c.Verb = RouteChange
	case "replace":
		c.Verb = RouteReplace
	default:
		return Command{}, false, nil
	}
	var ignored int
	c.Route, ignored, err = route.ParseOptions{Family: o.Family}.ParseLine(rest)
	if err == nil && ignored > 0 {
		err = refuseIgnored(strings.Fields(rest))
	}
	if err != nil {
		return Command{}, true, fmt.Errorf("route %s: %w", v, err)
	}
	return c, true, nil
}

// firstWord splits the first word, split at spaces and tabs, off s.
func firstWord(s string) (w, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Parse parses the words of one command. Leading -4 or -6 set the family
// as Options.Family does.
func (o Options) Parse(args []string) (Command, error) {
	for len(args) > 0 && (args[0] == "-4" || args[0] == "-6") {
		o.Family = int(args[0][1] - '0')
		args = args[1:]
	}
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
		if len(args) == 0 {
			return Command{}, errors.New(`flush empties both tables, every route and MAC entry: spell it "flush all" (route flush SELECTOR deletes some routes)`)
		}
		if args[0] != "all" {
			return Command{}, fmt.Errorf(`flush: unexpected argument %q (want "flush all")`, args[0])
		}
		return Command{Verb: Flush}, noArgs(args[1:])
	case "clients":
		j, err := jsonFlag(args)
		return Command{Verb: Clients, JSON: j}, err
	case "status":
		j, err := jsonFlag(args)
		return Command{Verb: Status, JSON: j}, err
	case "save":
		if len(args) != 1 || args[0] == "" || args[0] == "-" {
			return Command{}, errors.New("save: want one FILE to write")
		}
		return Command{Verb: Save, File: args[0]}, nil
	case "monitor":
		c := Command{Verb: Monitor}
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
	case "mac":
		return parseMAC(args)
	}
	return o.parseRoute(args)
}

func (o Options) parseRoute(args []string) (Command, error) {
	if len(args) == 0 {
		return Command{Verb: RouteShow, Sel: route.Selector{Table: route.TableMain}}, nil
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
		var ignored int
		c.Route, ignored, err = route.ParseOptions{Family: o.Family}.ParseFields(args)
		if err == nil && ignored > 0 {
			err = refuseIgnored(args)
		}
	case "del", "delete":
		c.Verb = RouteDel
		c.Sel, err = o.parseDel(args)
	case "load":
		c.Verb = RouteLoad
		if len(args) != 1 {
			return Command{}, errors.New("route load: want one FILE, or - for stdin")
		}
		c.File = args[0]
	case "show", "list":
		c.Verb = RouteShow
		args, c.JSON, c.Oneline = outputFlags(args)
		c.Sel, err = o.parseSelector(args)
	case "flush":
		c.Verb = RouteFlush
		if len(args) == 0 {
			return Command{}, errors.New(`route flush: give a SELECTOR ("table all" for every route; flush all empties the MAC table too)`)
		}
		c.Sel, err = o.parseSelector(args)
	case "get":
		c.Verb = RouteGet
		args, c.JSON, _ = outputFlags(args)
		c.Table, c.Addr, err = parseGet(args)
	}
	if err != nil {
		return Command{}, fmt.Errorf("route %s: %w", verb, err)
	}
	return c, nil
}

// refuseIgnored returns the error for a route to add, change or replace
// that has a word the route parser skips: what ip route show prints and
// rtm does not keep (scope, mtu, ...). route load skips them; a change
// typed by hand is refused, since what it says would be lost.
func refuseIgnored(words []string) error {
	for _, w := range words {
		if IgnoredWord(w) {
			return &route.FieldError{Field: "keyword", Value: w, Msg: "not kept by rtm (route load skips it in ip route show output)"}
		}
	}
	return &route.FieldError{Field: "keyword", Msg: "a word rtm does not keep"}
}

// IgnoredWord reports whether the route parser skips the keyword w, as a
// word of ip route show that rtm does not keep (scope, linkdown, mtu, ...).
// The parser holds the one list of them, so this asks it, with w as a flag
// and as a keyword with a value.
func IgnoredWord(w string) bool {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	for _, probe := range []string{"blackhole 0.0.0.0/0 " + w, "blackhole 0.0.0.0/0 " + w + " 1"} {
		if _, n, err := route.ParseLine(probe); err == nil && n == 1 {
			return true
		}
	}
	return false
}

// parseSelector reads the selector of route show and route flush. With a
// family and no prefix, it picks the routes of that family, as ip -4 and
// ip -6 do: root 0.0.0.0/0 or root ::/0.
func (o Options) parseSelector(args []string) (route.Selector, error) {
	s, err := route.ParseSelector(args, o.Family)
	if err == nil && s.Mode == route.AnyPrefix && o.Family != 0 {
		s.Mode, s.Prefix = route.Root, netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if o.Family == 6 {
			s.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	}
	return s, err
}

// parseDel reads the words of `route del`: an optional type, a prefix, and
// what else the route must have to be deleted, as `ip route del` takes
// them. A word rtm does not keep (scope, ...) is refused, since the route
// would be deleted whatever it said.
func (o Options) parseDel(args []string) (route.Selector, error) {
	var typ route.Type
	if len(args) > 0 {
		if t, err := route.ParseType(args[0]); err == nil {
			typ, args = t, args[1:]
		}
	}
	if len(args) == 0 {
		return route.Selector{}, &route.FieldError{Field: "dst", Msg: "missing: give a prefix, an address or default"}
	}
	w := args[0]
	if w == "to" || w == "exact" {
		args = args[1:]
	}
	if len(args) == 0 || args[0] == "root" || args[0] == "match" {
		return route.Selector{}, &route.FieldError{Field: "dst", Value: w, Msg: "route del takes one prefix (route flush takes root and match)"}
	}
	for i, a := range args {
		if a == "table" && i+1 < len(args) && args[i+1] == "all" {
			return route.Selector{}, &route.FieldError{Field: "table", Value: "all", Msg: "route del deletes from one table (route flush takes table all)"}
		}
	}
	s, err := route.ParseSelector(args, o.Family)
	if err != nil {
		return route.Selector{}, err
	}
	if s.Mode != route.Exact {
		return route.Selector{}, &route.FieldError{Field: "dst", Msg: "missing: give a prefix, an address or default"}
	}
	if typ != 0 {
		if s.Type != 0 && s.Type != typ {
			return route.Selector{}, &route.FieldError{Field: "type", Value: s.Type.String(), Msg: "given twice"}
		}
		s.Type = typ
	}
	return s, nil
}

// parseGet reads the words of `route get`: [to] ADDR [table T].
func parseGet(args []string) (uint32, netip.Addr, error) {
	var (
		table uint32
		addr  netip.Addr
		err   error
	)
	for i := 0; i < len(args); i++ {
		switch w := args[i]; w {
		case "table":
			if i+1 >= len(args) {
				return 0, addr, &route.FieldError{Field: "table", Value: w, Msg: "needs a value"}
			}
			i++
			if table, err = route.ParseTable(args[i]); err != nil {
				return 0, addr, err
			}
		case "to":
			continue
		default:
			if addr.IsValid() {
				return 0, addr, &route.FieldError{Field: "keyword", Value: w, Msg: "unknown keyword"}
			}
			if addr, err = route.ParseAddr("address", w); err != nil {
				return 0, addr, err
			}
		}
	}
	if !addr.IsValid() {
		return 0, addr, &route.FieldError{Field: "address", Msg: "missing: give ADDR"}
	}
	return table, addr, nil
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
		if c.Addr, c.Dev, err = macValue(args); err != nil {
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

// macValue reads "IP [dev IF]".
func macValue(args []string) (netip.Addr, string, error) {
	if len(args) == 0 {
		return netip.Addr{}, "", errors.New("missing IP")
	}
	ip, err := route.ParseAddr("ip", args[0])
	if err != nil {
		return netip.Addr{}, "", err
	}
	args = args[1:]
	dev := ""
	if len(args) > 0 && args[0] == "dev" {
		if len(args) < 2 {
			return netip.Addr{}, "", &route.FieldError{Field: "dev", Value: "dev", Msg: "needs a value"}
		}
		if err := route.CheckDev(args[1]); err != nil {
			return netip.Addr{}, "", err
		}
		dev, args = args[1], args[2:]
	}
	return ip, dev, noArgs(args)
}

// ParseMACLine parses one line of `rtm mac show` output: "MAC IP [dev IF]".
func ParseMACLine(line string) (m mac.Addr, ip netip.Addr, dev string, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return m, ip, "", errors.New(`want "MAC IP [dev IF]", got nothing`)
	}
	if m, err = mac.Parse(f[0]); err != nil {
		return m, ip, "", err
	}
	ip, dev, err = macValue(f[1:])
	return m, ip, dev, err
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

// outputFlags takes -j and -o out of args, wherever they are.
func outputFlags(args []string) (rest []string, json, oneline bool) {
	for _, a := range args {
		switch a {
		case "-j", "-json", "--json":
			json = true
		case "-o", "-oneline", "--oneline":
			oneline = true
		default:
			rest = append(rest, a)
		}
	}
	return rest, json, oneline
}
