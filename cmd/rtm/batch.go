package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rtm-project/rtm/client"
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
//
// Consecutive changes travel together: up to maxPending of them, or
// client.MaxChangesSize bytes, as one request that rtmd applies in order
// and stops at the first failure (or, with --force, goes on), so that a
// million-line batch of route adds costs a thousand round trips, not a
// million. Any other command (a route flush too, which scans the table and
// so goes alone) first sends the changes before it.
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
	b := batchRun{e: e}
	num := 0
	for sc.Scan() {
		num++
		line := sc.Text()
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		b.total++
		if err := b.line(ctx, opts, num, line); err != nil {
			return err
		}
	}
	// The changes read before a line that cannot be read are applied,
	// as they would be before a line that fails.
	if err := b.send(ctx); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: reading %s: %w", num+1, name, err)
	}
	if b.failed > 0 {
		return errBatchFailed{b.failed, b.total}
	}
	return nil
}

// maxPending is the most changes of a batch sent as one request.
const maxPending = 4096

// batchRun is a batch in progress: the changes read but not yet sent, with
// their line numbers.
type batchRun struct {
	e             *env
	changes       client.Changes
	lines         []int // of each pending change
	failed, total int
}

// line runs or queues one line.
func (b *batchRun) line(ctx context.Context, opts command.Options, num int, line string) error {
	cmd, err := opts.ParseLine(line)
	if err == nil && b.queue(cmd) == nil {
		b.lines = append(b.lines, num)
		if b.changes.Len() >= maxPending || b.changes.Size() >= client.MaxChangesSize-4096 {
			return b.send(ctx)
		}
		return nil
	}
	if err := b.send(ctx); err != nil {
		return err
	}
	if err == nil {
		err = b.e.batchCommand(ctx, cmd)
		b.e.dropConnAfter(err)
	}
	return b.fail(ctx, num, err)
}

// fail reports err of line num: the end of the batch, unless --force.
func (b *batchRun) fail(ctx context.Context, num int, err error) error {
	if err == nil {
		return nil
	}
	e := b.e
	if ctx.Err() != nil {
		return e.explain(err)
	}
	err = fmt.Errorf("line %d: %w", num, e.explain(err))
	if !e.force {
		return err
	}
	e.stdout.Flush()
	fmt.Fprintln(os.Stderr, "rtm:", err)
	b.failed++
	return nil
}

// queue adds cmd to the pending changes if it is a change; else it
// returns errNotChange.
func (b *batchRun) queue(cmd command.Command) error {
	l := &b.changes
	switch cmd.Verb {
	case command.RouteAdd:
		return l.Add(publicRoute(&cmd.Route))
	case command.RouteChange:
		return l.Change(publicRoute(&cmd.Route))
	case command.RouteReplace:
		return l.Replace(publicRoute(&cmd.Route))
	case command.RouteDel:
		return l.DeleteMatching(publicSelector(cmd.Sel))
	case command.Flush:
		l.FlushAll()
		return nil
	case command.MACAdd:
		return l.AddMAC(client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
	case command.MACChange:
		return l.ChangeMAC(client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
	case command.MACReplace:
		return l.ReplaceMAC(client.MACEntry{MAC: cmd.MAC, IP: cmd.Addr, Dev: cmd.Dev})
	case command.MACDel:
		l.DeleteMAC(cmd.MAC)
		return nil
	}
	return errNotChange
}

var errNotChange = errors.New("not a change")

// send applies the pending changes and reports each that failed on its
// line.
func (b *batchRun) send(ctx context.Context) error {
	if b.changes.Len() == 0 {
		return nil
	}
	defer func() {
		b.changes.Reset()
		b.lines = b.lines[:0]
	}()
	e := b.e
	e.limit = e.timeout // for the dial too
	err := e.needSocket(command.Command{Verb: command.RouteAdd})
	var c *client.Conn
	if err == nil {
		c, err = e.reqConn(ctx)
	}
	if err == nil {
		var res client.Applied
		rctx, done := e.request(ctx, 1)
		res, err = c.Apply(rctx, &b.changes, e.force)
		done()
		if err == nil {
			for _, f := range res.Failed {
				if err := b.fail(ctx, b.lines[f.Index], f.Err); err != nil {
					return err
				}
			}
			return nil
		}
	}
	e.dropConnAfter(err)
	// The request as a whole failed (refused, or no reply): its first line
	// says why, and with --force each of its lines counts as failed, since
	// none is known to be applied.
	if n := len(b.lines); n > 1 {
		err = fmt.Errorf("%v (the request of the %d changes of lines %d to %d failed as a whole)", e.explain(err), n, b.lines[0], b.lines[n-1])
		b.failed += n - 1
	}
	return b.fail(ctx, b.lines[0], err)
}

// dropConnAfter closes the batch's connection after an error other than
// rtmd's answer (no reply in time, a broken connection), so that the next
// request dials again: on the old one it would read the late reply to the
// request that failed.
func (e *env) dropConnAfter(err error) {
	var se *client.ServerError
	if err != nil && !errors.As(err, &se) {
		e.closeConn()
	}
}

// batchCommand runs a command of a batch that is not a change.
func (e *env) batchCommand(ctx context.Context, cmd command.Command) error {
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
