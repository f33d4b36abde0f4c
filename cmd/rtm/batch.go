package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rtm-project/rtm/internal/command"
)

// errBatchFailed ends a --force batch in which some command failed: each
// was reported on its line already.
type errBatchFailed struct{ failed, total int }

func (e errBatchFailed) Error() string {
	return fmt.Sprintf("%d of %d commands failed", e.failed, e.total)
}

// runBatch runs the commands of e.batch, one a line, as ip -batch does:
// in order, over one connection for every request (show and the mac
// snapshot, which subscribe, dial their own). It stops at the first
// failure, "line N: ERROR", unless --force.
func (e *env) runBatch(ctx context.Context) error {
	in, name := e.stdin, "stdin"
	if e.batch != "-" {
		f, err := os.Open(e.batch)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, e.batch
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	opts := command.Options{Family: e.family}
	failed, total, num := 0, 0, 0
	for sc.Scan() {
		num++
		line := sc.Text()
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		total++
		if err := e.batchLine(ctx, opts, line); err != nil {
			if ctx.Err() != nil {
				return e.explain(err)
			}
			err = fmt.Errorf("line %d: %w", num, e.explain(err))
			if !e.force {
				return err
			}
			e.stdout.Flush()
			fmt.Fprintln(os.Stderr, "rtm:", err)
			failed++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: reading %s: %w", num+1, name, err)
	}
	if failed > 0 {
		return errBatchFailed{failed, total}
	}
	return nil
}

// batchLine runs one line of a batch.
func (e *env) batchLine(ctx context.Context, opts command.Options, line string) error {
	cmd, err := opts.ParseLine(line)
	if err != nil {
		return err
	}
	switch {
	case cmd.Verb == command.Monitor || cmd.Verb == command.Client:
		return fmt.Errorf("%v does not end, so it cannot run in a batch", cmd.Verb)
	case cmd.File == "-" && e.batch == "-":
		return fmt.Errorf("%v -: stdin is the batch; give a FILE", cmd.Verb)
	}
	if e.socket == "" {
		if err := e.needSocket(cmd); err != nil {
			return err
		}
	}
	e.limit = e.timeout
	return e.do(ctx, cmd)
}
