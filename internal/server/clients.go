package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/metrics"
	"slices"
	"strings"
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
		wire.KMACAdd, wire.KMACChange, wire.KMACReplace, wire.KMACDel, wire.KMACLoad, wire.KFlush, wire.KRouteFlush, wire.KBatch:
		return true
	}
	return false
}

// register records that c wants SIGUSR1 on a flush. The pid must be the
// socket peer's (SO_PEERCRED), and the pidfd comes from the connection
// itself (SO_PEERPIDFD, Linux 6.5 and later): it refers to the process that
// connected, and to nothing else once that process is gone, so a pid reused
// after the client died is never signalled. Where the kernel cannot give
// that pidfd, registration is refused; so it is when that process is gone.
func (s *Server) register(c *conn, pid int32) error {
	switch {
	case c == nil:
		return fmt.Errorf("only socket clients register")
	case c.pidfd >= 0:
		return fmt.Errorf("register: already registered as pid %d", c.regPid)
	}
	fd, err := signalTarget(c, pid)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	c.pidfd, c.regPid = fd, pid
	s.rates.info("registered", "client registered", "client", c)
	return nil
}

// signalTarget returns a pidfd of the process that connected c, which the
// client says is pid: the one rtmd may signal on its behalf.
func signalTarget(c *conn, pid int32) (int, error) {
	if pid != c.cred.Pid {
		return -1, fmt.Errorf("pid %d is not yours: the socket's peer is pid %d", pid, c.cred.Pid)
	}
	fd, err := peerPidfd(c)
	switch {
	case errors.Is(err, unix.ESRCH):
		return -1, fmt.Errorf("pid %d, which opened this connection, has exited", pid)
	case errors.Is(err, unix.ENOPROTOOPT):
		return -1, fmt.Errorf("this kernel cannot name the socket's peer process (SO_PEERPIDFD needs Linux 6.5), so rtmd does not signal it")
	case err != nil:
		return -1, err
	}
	// Linux 6.15 and later give a pidfd for a process that has exited
	// too; it can never be signalled, but the client should hear why.
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("pid %d, which opened this connection, has exited", pid)
	}
	return fd, nil
}

// peerPidfd returns a pidfd for the process that connected c.
func peerPidfd(c *conn) (int, error) {
	uc, ok := c.nc.(*net.UnixConn)
	if !ok {
		return -1, unix.ENOPROTOOPT
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, serr := -1, error(nil)
	if err := raw.Control(func(sfd uintptr) {
		fd, serr = unix.GetsockoptInt(int(sfd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	}); err != nil {
		return -1, err
	}
	if serr != nil {
		return -1, os.NewSyscallError("getsockopt SO_PEERPIDFD", serr)
	}
	return fd, nil
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
	if s.objects != nil {
		s.objects.clear(s.seq)
	}
	if err := s.macs.setFlush(s.seq); err != nil {
		s.log.Error("MAC table", "err", err)
	}
	s.flushing = true
	s.rates.info("flush", "tables flushed", "seq", s.seq)
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
			Subscribed: c.subscribed, Registered: c.pidfd >= 0 || c.signalled,
			Delivered: c.delivered.Load(), Acked: c.acked.Load(),
			Backlog: backlog, Resyncs: c.resyncs, Transport: c.input.transport(),
		})
	}
	slices.SortFunc(list, func(a, b wire.ClientInfo) int { return int(a.ID - b.ID) })
	if list == nil {
		list = []wire.ClientInfo{}
	}
	// Names go out as they are, not HTML-escaped: '<' would cost six bytes.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(list)
	return strings.TrimSuffix(b.String(), "\n")
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

// statusJSON returns the status; for a TCP peer, without the names of
// local objects.
func (s *Server) statusJSON(remote bool) string {
	st := wire.Status{
		Version: s.cfg.Version, Uptime: time.Since(s.started).Seconds(), Seq: s.seq,
		Routes4: s.table.Len4(), Routes6: s.table.Len6(), MACs: len(s.macs.entries),
		Clients: map[string]int{"unix": 0, "tcp": 0, "compat": 0}, Inputs: map[string]wire.Counter{},
		SHM: s.macs.seg.Name, HeapLive: heapLive(),
	}
	if s.queue != nil {
		st.Queue = s.queue.Name()
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
	if s.persist != nil && !remote {
		st.State = s.persist.status()
	}
	if remote {
		st.Queue, st.SHM = "", ""
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// heapLive returns the heap bytes the last garbage collection found live.
func heapLive() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}
