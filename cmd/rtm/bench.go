package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/bench"
)

const benchUsage = `usage: rtm bench [flags] [scenario...]

Starts its own rtmd (private socket, queue and shared memory names) and
subscriber processes, runs each scenario several times, prints each
figure's median with min and max, beside the same work done through the
references: the IPC limit (a plain fan-out of the same bytes), the kernel's
routing table (as root, with ip), and Redis as SONiC uses it (with
redis-server installed). Cleans up everything it started, also when
interrupted.

Scenarios: load snapshot churn latency mac memory restart (default: all)

Flags:
`

// benchCmd is `rtm bench`.
func (e *env) benchCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rtm bench", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	routes := fs.Int("routes", 1_000_000, "IPv4 `routes` in load, snapshot and memory (a fifth as many IPv6 routes in the IPv6 load)")
	clients := fs.Int("clients", 16, "subscriber `processes` in the scenarios with many")
	runs := fs.Int("runs", 3, "repetitions of each measurement")
	dur := fs.Duration("duration", 2*time.Second, "length of churn, latency and mac")
	asJSON := fs.Bool("j", false, "print one JSON document")
	from := fs.String("from", "", "print the report saved in `file` (from -j) instead of running")
	refs := fs.String("refs", "ipc-limit,kernel,redis", "the references to run, comma-separated")
	rtmd := fs.String("rtmd", "", "the rtmd `binary` (default: next to rtm, else in PATH)")
	created := fs.String("created", "", "append to `file` a line for each directory, process, rtmd socket and network namespace the bench makes, as it makes it (to check its cleanup)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, benchUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if *from != "" {
		data, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var rep bench.Report
		if err := json.Unmarshal(data, &rep); err != nil {
			return fmt.Errorf("%s: %w", *from, err)
		}
		bench.Print(e.stdout, &rep)
		return nil
	}
	if *routes < 10 || *clients < 1 || *runs < 1 {
		return usageError{errors.New("bench: -routes at least 10, -clients and -runs at least 1")}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *rtmd == "" {
		*rtmd = filepath.Join(filepath.Dir(self), "rtmd")
		if _, err := os.Stat(*rtmd); err != nil {
			if *rtmd, err = exec.LookPath("rtmd"); err != nil {
				return errors.New("bench: no rtmd next to rtm or in PATH; build it (go build ./cmd/rtmd) or give -rtmd")
			}
		}
	}
	cfg := bench.Config{RTMD: *rtmd, RTM: self, Routes: *routes, Clients: *clients, Runs: *runs,
		Duration: *dur, Scenarios: fs.Args(), Refs: strings.Split(*refs, ",")}
	if isTerminal(os.Stderr) {
		cfg.Progress = os.Stderr
	}
	if *created != "" {
		f, err := os.OpenFile(*created, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("bench: -created: %w", err)
		}
		defer f.Close()
		cfg.Created = f
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	bench.Print(e.stdout, rep)
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
