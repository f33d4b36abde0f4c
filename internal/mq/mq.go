// Package mq is a small POSIX message queue library over raw system calls
// (mq_open(3) and friends), with the queue descriptor on Go's netpoller: the
// descriptor is non-blocking and wrapped with os.NewFile, and Send and
// Receive wait for it through the poller, so that no goroutine blocks in a
// system call and deadlines and Close interrupt a wait.
//
// Names are given as mq_open(3) takes them, with a leading slash ("/rtm");
// the raw system call takes them without, which this package handles. A
// Queue is safe for concurrent use.
package mq

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Attr is struct mq_attr.
type Attr struct {
	Flags   int64 // O_NONBLOCK or 0
	MaxMsg  int64 // most messages in the queue
	MsgSize int64 // largest message, in bytes
	CurMsgs int64 // messages in the queue now
	_       [4]int64
}

// Bytes returns what a queue with these attributes counts against its
// creator's RLIMIT_MSGQUEUE when it is created (ipc/mqueue.c: room for
// MaxMsg messages of MsgSize bytes, and for the kernel's bookkeeping of
// each, 48 bytes a message and 48 a priority on 64-bit Linux).
func (a Attr) Bytes() int64 {
	const msgHeader, treeNode = 48, 48
	return a.MaxMsg*(a.MsgSize+msgHeader) + min(a.MaxMsg, 32768)*treeNode
}

// Limits are the system's limits for new queues, from /proc/sys/fs/mqueue.
type Limits struct {
	MsgMax     int64 // msg_max: the largest MaxMsg an unprivileged creator may ask for
	MsgSizeMax int64 // msgsize_max: the largest MsgSize likewise
}

// ReadLimits reads the system's limits, with Linux's defaults for what it
// cannot read.
func ReadLimits() Limits {
	l := Limits{MsgMax: 10, MsgSizeMax: 8192}
	read := func(name string, v *int64) {
		b, err := os.ReadFile("/proc/sys/fs/mqueue/" + name)
		if err != nil {
			return
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			*v = n
		}
	}
	read("msg_max", &l.MsgMax)
	read("msgsize_max", &l.MsgSizeMax)
	return l
}

// Queue is an open message queue.
type Queue struct {
	name   string
	f      *os.File
	attr   Attr
	closed atomic.Bool
}

// wrap makes the poller's "use of closed file" os.ErrClosed, as os.File's
// own methods do.
func (q *Queue) wrap(err error) error {
	if q.closed.Load() && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w (%v)", os.ErrClosed, err)
	}
	return err
}

func sysName(name string) (*byte, error) {
	if len(name) < 2 || name[0] != '/' || strings.IndexByte(name[1:], '/') >= 0 || len(name) > 255 {
		return nil, fmt.Errorf("mq: invalid name %q: want /NAME, no other slash", name)
	}
	return unix.BytePtrFromString(name[1:])
}

// Open opens (with O_CREAT, creates) the queue name. flag is O_RDONLY,
// O_WRONLY or O_RDWR, with O_CREAT and O_EXCL as needed; attr is used when
// creating, and may be nil for the system's defaults.
func Open(name string, flag int, perm os.FileMode, attr *Attr) (*Queue, error) {
	p, err := sysName(name)
	if err != nil {
		return nil, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
		uintptr(flag|unix.O_NONBLOCK|unix.O_CLOEXEC), uintptr(perm.Perm()), uintptr(unsafe.Pointer(attr)), 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("mq open %q: %w", name, os.NewSyscallError("mq_open", errno))
	}
	q := &Queue{name: name, f: os.NewFile(fd, name)}
	if err := q.getattr(); err != nil {
		q.f.Close()
		return nil, err
	}
	return q, nil
}

func (q *Queue) getattr() error {
	rc, err := q.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_MQ_GETSETATTR, fd, 0, uintptr(unsafe.Pointer(&q.attr)))
	})
	if errno != 0 {
		return fmt.Errorf("mq getattr %q: %w", q.name, os.NewSyscallError("mq_getsetattr", errno))
	}
	return nil
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Attr returns the queue's attributes as they were when it was opened.
func (q *Queue) Attr() Attr { return q.attr }

// Stat returns the queue's mode, owner and group, as fstat(2) of its
// descriptor reports them; the Sys value is a *syscall.Stat_t.
func (q *Queue) Stat() (os.FileInfo, error) {
	fi, err := q.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mq stat %q: %w", q.name, sysErr("fstat", err))
	}
	return fi, nil
}

// Chmod sets the queue's permission bits exactly, whatever the umask that
// filtered the mode it was created with (fchmod(2) on its descriptor).
func (q *Queue) Chmod(mode os.FileMode) error {
	if err := q.f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("mq chmod %q to %#o: %w", q.name, mode.Perm(), sysErr("fchmod", err))
	}
	return nil
}

// Chown sets the queue's owner and group (fchown(2) on its descriptor); -1
// leaves one as it is.
func (q *Queue) Chown(uid, gid int) error {
	if err := q.f.Chown(uid, gid); err != nil {
		return fmt.Errorf("mq chown %q to %d:%d: %w", q.name, uid, gid, sysErr("fchown", err))
	}
	return nil
}

// sysErr names the system call in an error of an os.File method, rather
// than the queue's name as a path, which the caller names already.
func sysErr(call string, err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return os.NewSyscallError(call, pe.Err)
	}
	return err
}

// SetReadDeadline sets the deadline for Receive; zero means none.
func (q *Queue) SetReadDeadline(t time.Time) error { return q.f.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for Send; zero means none.
func (q *Queue) SetWriteDeadline(t time.Time) error { return q.f.SetWriteDeadline(t) }

// ErrMsgSize is returned by Send for a message longer than the queue's
// MsgSize (EMSGSIZE).
var ErrMsgSize = errors.New("message too long for the queue")

// Send sends msg with priority prio, waiting while the queue is full until
// the write deadline (os.ErrDeadlineExceeded).
func (q *Queue) Send(msg []byte, prio uint) error {
	if int64(len(msg)) > q.attr.MsgSize {
		return fmt.Errorf("mq send %q: %w: %d bytes, limit %d", q.name, ErrMsgSize, len(msg), q.attr.MsgSize)
	}
	rc, err := q.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("mq send %q: %w", q.name, err)
	}
	var errno syscall.Errno
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	err = rc.Write(func(fd uintptr) bool {
		_, _, errno = unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(p), uintptr(len(msg)), uintptr(prio), 0, 0)
		return errno != unix.EAGAIN
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("mq_timedsend", errno)
	}
	if err != nil {
		return fmt.Errorf("mq send %q: %w", q.name, q.wrap(err))
	}
	return nil
}

// Receive receives the oldest message of the highest priority into buf,
// which must hold MsgSize bytes, waiting while the queue is empty until the
// read deadline (os.ErrDeadlineExceeded) or Close (os.ErrClosed).
func (q *Queue) Receive(buf []byte) (n int, prio uint, err error) {
	if int64(len(buf)) < q.attr.MsgSize {
		return 0, 0, fmt.Errorf("mq receive %q: buffer of %d bytes, the queue's messages take up to %d", q.name, len(buf), q.attr.MsgSize)
	}
	rc, err := q.f.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("mq receive %q: %w", q.name, err)
	}
	var errno syscall.Errno
	var r uintptr
	var pr uint32
	err = rc.Read(func(fd uintptr) bool {
		r, _, errno = unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&pr)), 0, 0)
		return errno != unix.EAGAIN
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("mq_timedreceive", errno)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("mq receive %q: %w", q.name, q.wrap(err))
	}
	return int(r), uint(pr), nil
}

// Close closes the queue; a Send or Receive waiting on it returns an error
// wrapping os.ErrClosed.
func (q *Queue) Close() error {
	q.closed.Store(true)
	return q.f.Close()
}

// Unlink removes the queue name; queues already open stay usable.
func Unlink(name string) error {
	p, err := sysName(name)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return fmt.Errorf("mq unlink %q: %w", name, os.NewSyscallError("mq_unlink", errno))
	}
	return nil
}
