package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/command"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/wire"
)

// maxLine is the longest command line rtmd takes from the queue: a whole
// message, since the longest route (32 next hops) is some 2.7 KB of text.
const maxLine = queueMsgSize

// MQOff as Config.MQ (rtmd -mq off) runs rtmd without a queue.
const MQOff = "off"

// The queue's attributes, at most; the system's limits may lower them.
// A queue charges its creator's RLIMIT_MSGQUEUE for its whole capacity
// (mq.Attr.Bytes: 33,536 bytes for these), and the default limit is
// 819,200 bytes per uid, so one user can run some 24 rtmds. A message of
// 4096 bytes holds one line or several; eight of them queue
// while rtmd's loop is busy, and a sender waits for room beyond that.
const (
	queueMaxMsg  = 8
	queueMsgSize = 4096
)

// openQueue replaces a stale queue of this name and creates rtmd's, with
// attributes within the system's limits, owned by rtmd's uid and the
// group of -group (else rtmd's), mode queueGroupMode with -group and
// queueMode without. It returns nil with Config.MQ MQOff.
func (s *Server) openQueue() (*mq.Queue, error) {
	name := s.cfg.MQ
	if name == MQOff {
		s.log.Info("no message queue (-mq off)")
		return nil, nil
	}
	if err := mq.Unlink(name); err == nil {
		s.log.Info("removed stale message queue", "name", name)
	} else if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("%w: another user's queue has rtmd's name; rtmd -mq /OTHER or -mq off", err)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l := mq.ReadLimits()
	attr := mq.Attr{MaxMsg: min(l.MsgMax, queueMaxMsg), MsgSize: min(l.MsgSizeMax, queueMsgSize)}
	// Created for rtmd's uid alone; the umask can only narrow that, and
	// the mode is set exactly once the group is right.
	q, err := mq.Open(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL, queueMode, &attr)
	if err != nil {
		return nil, queueError(err, attr)
	}
	mode := queueMode
	if s.groupID >= 0 {
		mode = queueGroupMode
	}
	if err = q.Chown(-1, fileGroup(s.groupID)); err == nil {
		err = q.Chmod(mode)
	}
	if err != nil {
		q.Close()
		mq.Unlink(name)
		return nil, err
	}
	s.log.Info("message queue", "name", name, "mode", fmt.Sprintf("%#o", mode), "gid", fileGroup(s.groupID),
		"maxmsg", q.Attr().MaxMsg, "msgsize", q.Attr().MsgSize,
		"limits", fmt.Sprintf("msg_max=%d msgsize_max=%d", l.MsgMax, l.MsgSizeMax))
	return q, nil
}

// queueError explains why the system refused to create the queue, where
// mq_open's own words mislead: EMFILE says "too many open files" when the
// creator's queues would pass RLIMIT_MSGQUEUE.
func queueError(err error, attr mq.Attr) error {
	var why string
	switch {
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENOMEM):
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_MSGQUEUE, &rl)
		why = fmt.Sprintf("the queues of uid %d would pass RLIMIT_MSGQUEUE, %d bytes (this one takes %d; `ulimit -q` raises the limit)",
			os.Geteuid(), rl.Cur, attr.Bytes())
	case errors.Is(err, unix.ENOSPC):
		why = fmt.Sprintf("the system has as many queues as /proc/sys/fs/mqueue/queues_max allows (%s)", readQueuesMax())
	default:
		return err
	}
	return fmt.Errorf("%w: %s; rtmd -mq off runs without the queue", err, why)
}

func readQueuesMax() string {
	b, err := os.ReadFile("/proc/sys/fs/mqueue/queues_max")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// readQueue receives messages until the queue is closed and hands each to
// the loop whole.
func (s *Server) readQueue(q *mq.Queue) {
	if q == nil {
		return // -mq off
	}
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
	r := evRequest{route: cmd.Route, sel: cmd.Sel, mac: cmd.MAC, ip: cmd.Addr, dev: cmd.Dev}
	switch cmd.Verb {
	case command.RouteAdd:
		r.kind = wire.KAdd
	case command.RouteChange:
		r.kind = wire.KChange
	case command.RouteReplace:
		r.kind = wire.KReplace
	case command.RouteDel:
		r.kind = wire.KDel
	case command.RouteFlush:
		r.kind = wire.KRouteFlush
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
		return evRequest{}, fmt.Errorf("%v is not a queue command (the queue takes changes: route add, change, replace, del, flush SELECTOR; mac add, change, replace, del; flush all)", cmd.Verb)
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
