package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rtm-project/rtm/client"
)

// request bounds one request to rtmd by --timeout, scale times over (a
// load of N entries gets 1+N/1,000,000 times). The time rtm spends blocked
// writing its own output, to a slow pager say, does not count: each write
// moves the deadline on by as long as it took. done releases the timer.
func (e *env) request(ctx context.Context, scale int) (_ context.Context, done func()) {
	if e.timeout <= 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	limit := e.timeout * time.Duration(scale)
	e.limit = limit
	t := time.AfterFunc(limit, func() {
		e.timedOut.Store(true)
		cancel()
	})
	e.out.timer, e.out.deadline = t, time.Now().Add(limit)
	return ctx, func() {
		e.out.timer = nil
		t.Stop()
		cancel()
	}
}

// loadScale is the scale of request for a load of n entries.
func loadScale(n int) int { return 1 + n/1_000_000 }

// output is rtm's standard output. While a request is under way, a write
// stops the request's timer and moves its deadline on by as long as the
// write took.
type output struct {
	w        io.Writer
	timer    *time.Timer // the request's, or nil
	deadline time.Time   // when the request's time runs out
}

func (o *output) Write(p []byte) (int, error) {
	if o.timer == nil || !o.timer.Stop() {
		return o.w.Write(p)
	}
	start := time.Now()
	n, err := o.w.Write(p)
	o.deadline = o.deadline.Add(time.Since(start))
	o.timer.Reset(time.Until(o.deadline))
	return n, err
}

// explain rewrites the errors of reaching rtmd into what the user can do
// about them.
func (e *env) explain(err error) error {
	if err == nil {
		return nil
	}
	var pe *client.UntrustedPeerError
	var oe *net.OpError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("rtmd socket %s is served by uid %d (pid %d), neither root nor you (uid %d): refused, as another user may have planted it; if you trust uid %d, pass --trust-uid %d or set RTM_TRUST_UID=%d",
			pe.Address, pe.UID, pe.PID, os.Geteuid(), pe.UID, pe.UID, pe.UID)
	case e.via != "mq" && (e.timedOut.Load() && errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)):
		return fmt.Errorf("no answer from rtmd at %s within %v (is it stopped? --timeout sets the limit)", e.address(), e.limit)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("cannot reach rtmd at %s: %v (is rtmd running?)", e.address(), oe.Err)
	}
	return err
}

// flagValue returns the value of flag a, given as --flag=VALUE or as the
// next argument, and the arguments after it.
func flagValue(a string, args []string) (string, []string, error) {
	if _, v, ok := strings.Cut(a, "="); ok {
		return v, args, nil
	}
	if len(args) == 0 {
		return "", args, usageError{fmt.Errorf("%s needs a value", a)}
	}
	return args[0], args[1:], nil
}

func parseUID(s string) (uint32, error) {
	uid, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("uid %q: want a number", s)
	}
	return uint32(uid), nil
}

// snapshotConn dials a connection of its own for one request that
// subscribes (a snapshot stays on its connection), bounded as request
// bounds it; done closes it.
func (e *env) snapshotConn(ctx context.Context) (*client.Conn, context.Context, func(), error) {
	c, err := e.dial(ctx)
	if err != nil {
		return nil, ctx, nil, err
	}
	ctx, done := e.request(ctx, 1)
	return c, ctx, func() { done(); c.Close() }, nil
}
