package server

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/wire"
)

// mayWrite reports whether a peer with these credentials may change the
// tables: root, rtmd's own uid, and members of Config.Group.
func (s *Server) mayWrite(cred unix.Ucred, groups []uint32) bool {
	if cred.Uid == 0 || int(cred.Uid) == os.Getuid() {
		return true
	}
	if s.groupID < 0 {
		return false
	}
	return int64(cred.Gid) == s.groupID || slices.Contains(groups, uint32(s.groupID))
}

func (s *Server) groupText() string {
	if s.cfg.Group == "" {
		return ""
	}
	return " or group " + s.cfg.Group
}

func isMutation(kind byte) bool {
	switch kind {
	case wire.KAdd, wire.KChange, wire.KReplace, wire.KDel, wire.KLoad,
		wire.KMACAdd, wire.KMACChange, wire.KMACReplace, wire.KMACDel, wire.KMACLoad, wire.KFlush:
		return true
	}
	return false
}

// register records that c wants SIGUSR1 on a flush. The pid must be the
// socket peer's (SO_PEERCRED), and rtmd keeps a pidfd for it, so that a pid
// reused after the client died is never signalled.
func (s *Server) register(c *conn, pid int32) error {
	switch {
	case c == nil:
		return fmt.Errorf("only socket clients register")
	case pid != c.cred.Pid:
		return fmt.Errorf("register: pid %d is not yours: the socket's peer is pid %d", pid, c.cred.Pid)
	case c.pidfd >= 0:
		return fmt.Errorf("register: already registered as pid %d", c.regPid)
	}
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return fmt.Errorf("register: %w", os.NewSyscallError("pidfd_open", err))
	}
	c.pidfd, c.regPid = fd, pid
	s.log.Info("client registered", "client", c)
	return nil
}

// flush empties both tables: one change in the stream, the flush sequence
// number in the MAC segment's header, and, once the turn is published,
// SIGUSR1 to every registered client.
func (s *Server) flush() {
	s.table.Clear()
	if err := s.macs.clear(); err != nil {
		s.log.Error("MAC table", "err", err)
	}
	s.seq++
	s.changes.AddFlush(s.seq)
	if err := s.macs.setFlush(s.seq); err != nil {
		s.log.Error("MAC table", "err", err)
	}
	s.flushing = true
	s.log.Info("tables flushed", "seq", s.seq)
}

func (s *Server) signalFlush() {
	for c := range s.clients {
		if c.pidfd < 0 {
			continue
		}
		if err := unix.PidfdSendSignal(c.pidfd, unix.SIGUSR1, nil, 0); err != nil {
			// ESRCH: it died; its socket will tell us soon.
			s.log.Warn("signalling client", "client", c, "err", os.NewSyscallError("pidfd_send_signal", err))
		}
	}
}

func (s *Server) clientsJSON() string {
	var list []wire.ClientInfo
	for c := range s.clients {
		c.mu.Lock()
		backlog := c.queued
		c.mu.Unlock()
		list = append(list, wire.ClientInfo{
			ID: c.id, PID: c.cred.Pid, UID: c.cred.Uid, Name: c.name,
			Since:      c.since.UTC().Format(time.RFC3339),
			Subscribed: c.subscribed, Registered: c.pidfd >= 0,
			Delivered: c.delivered.Load(), Acked: c.acked.Load(),
			Backlog: backlog, Resyncs: c.resyncs, Transport: c.input.transport(),
		})
	}
	slices.SortFunc(list, func(a, b wire.ClientInfo) int { return int(a.ID - b.ID) })
	if list == nil {
		list = []wire.ClientInfo{}
	}
	b, _ := json.Marshal(list)
	return string(b)
}

// input is where a command came from, for the status counters.
type input int

const (
	inSocket input = iota
	inQueue
	inTCP
	inConsole
	inCompat
	nInputs
)

var inputNames = [nInputs]string{"socket", "queue", "tcp", "console", "compat"}

func (in input) transport() string {
	switch in {
	case inTCP:
		return "tcp"
	case inCompat:
		return "compat"
	}
	return "unix"
}

type counter struct{ accepted, rejected uint64 }

func (s *Server) statusJSON() string {
	st := wire.Status{
		Version: s.cfg.Version, Uptime: time.Since(s.started).Seconds(), Seq: s.seq,
		Routes4: s.table.Len4(), Routes6: s.table.Len6(), MACs: len(s.macs.entries),
		Clients: map[string]int{"unix": 0, "tcp": 0, "compat": 0}, Inputs: map[string]wire.Counter{},
		Queue: s.cfg.MQ, SHM: s.macs.seg.Name,
	}
	if s.tcp != nil {
		st.TCP = s.tcp.Addr().String()
	}
	for c := range s.clients {
		st.Clients[c.input.transport()]++
	}
	for i, n := range inputNames {
		st.Inputs[n] = wire.Counter{Accepted: s.inputs[i].accepted, Rejected: s.inputs[i].rejected}
	}
	b, _ := json.Marshal(st)
	return string(b)
}
