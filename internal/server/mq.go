package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/wire"
)

// maxLine is the longest command line rtmd takes from the queue.
const maxLine = 1024

// openQueue replaces a stale queue of this name and creates rtmd's, with
// attributes within the system's limits.
func (s *Server) openQueue() (*mq.Queue, error) {
	name := s.cfg.MQ
	if err := mq.Unlink(name); err == nil {
		s.log.Info("removed stale message queue", "name", name)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l := mq.ReadLimits()
	attr := mq.Attr{MaxMsg: min(l.MsgMax, 64), MsgSize: min(l.MsgSizeMax, 8192)}
	q, err := mq.Open(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o620, &attr)
	if err != nil {
		return nil, err
	}
	s.log.Info("message queue", "name", name, "maxmsg", q.Attr().MaxMsg, "msgsize", q.Attr().MsgSize,
		"limits", fmt.Sprintf("msg_max=%d msgsize_max=%d", l.MsgMax, l.MsgSizeMax))
	return q, nil
}

// readQueue receives messages until the queue is closed and hands each to
// the loop whole.
func (s *Server) readQueue(q *mq.Queue) {
	buf := make([]byte, q.Attr().MsgSize)
	for {
		n, _, err := q.Receive(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				s.log.Error("message queue", "err", err)
			}
			return
		}
		reqs, errs := parseMessage(buf[:n])
		select {
		case s.events <- evQueue{reqs: reqs, errs: errs}:
		case <-s.stopping:
			return
		}
	}
}

// evQueue is one message from the queue: its commands, and the lines that
// did not parse.
type evQueue struct {
	reqs []evRequest
	errs []error
}

// parseMessage splits a queue message into command lines and parses each.
// A message is not all-or-nothing: each line stands alone, and a bad line
// is rejected without stopping the others (docs/protocol.md).
func parseMessage(msg []byte) (reqs []evRequest, errs []error) {
	for i, line := range strings.Split(string(msg), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := parseQueueLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i+1, err))
			continue
		}
		r.line = i + 1
		reqs = append(reqs, r)
	}
	return reqs, errs
}

func parseQueueLine(line string) (evRequest, error) {
	switch {
	case !utf8.ValidString(line):
		return evRequest{}, errors.New("not UTF-8")
	case len(line) > maxLine:
		return evRequest{}, fmt.Errorf("line of %d bytes, limit %d", len(line), maxLine)
	}
	cmd, err := command.ParseLine(line)
	if err != nil {
		return evRequest{}, err
	}
	r := evRequest{route: cmd.Route, mac: cmd.MAC, ip: cmd.Addr}
	switch cmd.Verb {
	case command.RouteAdd:
		r.kind = wire.KAdd
	case command.RouteChange:
		r.kind = wire.KChange
	case command.RouteReplace:
		r.kind = wire.KReplace
	case command.RouteDel:
		r.kind = wire.KDel
	case command.MACAdd:
		r.kind = wire.KMACAdd
	case command.MACChange:
		r.kind = wire.KMACChange
	case command.MACReplace:
		r.kind = wire.KMACReplace
	case command.MACDel:
		r.kind = wire.KMACDel
	case command.Flush:
		r.kind = wire.KFlush
	default:
		return evRequest{}, fmt.Errorf("%v is not a queue command (the queue takes changes: route and mac add, change, replace, del, and flush)", cmd.Verb)
	}
	return r, nil
}

// queueMessage applies a message's commands, in order, in one turn.
func (s *Server) queueMessage(ev evQueue) {
	for _, err := range ev.errs {
		s.inputs[inQueue].rejected++
		s.log.Warn("queue command rejected", "err", err)
	}
	for _, r := range ev.reqs {
		var res Result
		s.apply(r, &res)
		if res.Err != nil {
			s.inputs[inQueue].rejected++
			s.log.Warn("queue command rejected", "line", r.line, "err", res.Err)
			continue
		}
		s.inputs[inQueue].accepted++
	}
}
