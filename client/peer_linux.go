package client

import (
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// checkPeer returns the uid of the process behind uc, or an error if d does
// not trust it.
func (d *Dialer) checkPeer(uc *net.UnixConn, address string) (uint32, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials of %s: %w", address, err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials of %s: %w", address, err)
	}
	if credErr != nil {
		return 0, fmt.Errorf("peer credentials of %s: %w", address, os.NewSyscallError("getsockopt SO_PEERCRED", credErr))
	}
	if cred.Uid != 0 && cred.Uid != uint32(os.Geteuid()) && !slices.Contains(d.TrustUIDs, cred.Uid) {
		return cred.Uid, &UntrustedPeerError{Address: address, UID: cred.Uid, PID: cred.Pid}
	}
	return cred.Uid, nil
}
