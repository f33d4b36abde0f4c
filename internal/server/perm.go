package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Modes of what rtmd creates, set exactly (chmod after creation), whatever
// the umask: docs/security.md.
const (
	// socketMode lets rtmd's uid and the socket's group connect: the group
	// of -group, else rtmd's own.
	socketMode os.FileMode = 0o660
	// queueMode lets rtmd's uid send to the queue, and receive.
	queueMode os.FileMode = 0o600
	// queueGroupMode adds sending for the group of -group, whose members
	// may change the tables over the socket too. Without -group, no group
	// may send: rtmd's own group is only allowed to subscribe.
	queueGroupMode os.FileMode = 0o620
)

// lookupGroup resolves -group, a group name or, as chown(1) takes it, a
// numeric gid that needs no entry in the group database. It returns -1 for
// "".
func lookupGroup(name string) (int64, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err == nil {
		return strconv.ParseInt(g.Gid, 10, 64)
	}
	if id, nerr := strconv.ParseUint(name, 10, 32); nerr == nil && id != 1<<32-1 {
		return int64(id), nil
	}
	return -1, fmt.Errorf("-group %q: %w", name, err)
}

// fileGroup is the group that rtmd gives the socket and the queue: that
// of -group, else rtmd's effective gid (not the directory's, which a
// set-group-ID directory would give).
func fileGroup(groupID int64) int {
	if groupID >= 0 {
		return int(groupID)
	}
	return os.Getegid()
}

// bindUnix listens on a new Unix socket at path, with mode socketMode,
// rtmd's uid and group gid, from its first moment there. It binds the
// socket in a fresh directory that only rtmd's uid may enter, sets its
// mode and group there, and then links it to path, so nobody can connect
// while its mode is still what the umask made it. The link fails if path
// exists: of two rtmds started at once on one path, one gets an error.
//
// The listener's address (getsockname, ss -xl) stays the temporary name,
// which is gone. Closing the listener does not remove path; the caller
// does.
func bindUnix(path string, gid int) (*net.UnixListener, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".rtmd-")
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	dfd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, os.NewSyscallError("open "+tmp, err))
	}
	defer unix.Close(dfd)
	name := filepath.Join(tmp, "s")
	if len(name) >= len(unix.RawSockaddrUnix{}.Path) {
		// The temporary name is longer than path; reach the directory
		// through its descriptor instead.
		name = fmt.Sprintf("/proc/self/fd/%d/s", dfd)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(call string, err error) (*net.UnixListener, error) {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, os.NewSyscallError(call, err))
	}
	if err := unix.Fchownat(dfd, "s", -1, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (to give the socket group %d, rtmd's user must be a member of it)", err, gid)
		}
		return fail(fmt.Sprintf("fchownat to group %d", gid), err)
	}
	if err := unix.Fchmodat(dfd, "s", uint32(socketMode), 0); err != nil {
		return fail(fmt.Sprintf("fchmodat to %#o", socketMode), err)
	}
	if err := unix.Linkat(dfd, "s", unix.AT_FDCWD, path, 0); err != nil {
		if errors.Is(err, unix.EEXIST) {
			ln.Close()
			return nil, fmt.Errorf("socket %s: another rtmd took the path while this one started", path)
		}
		return fail("link", err)
	}
	return ln, nil
}
