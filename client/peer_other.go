//go:build !linux

package client

import (
	"fmt"
	"net"
	"runtime"
)

// checkPeer refuses: rtmd runs on Linux only, and this client cannot tell
// who serves a Unix socket here.
func (d *Dialer) checkPeer(uc *net.UnixConn, address string) (uint32, error) {
	return noPeerUID, fmt.Errorf("rtmd socket %s: cannot check who serves a Unix socket on %s", address, runtime.GOOS)
}
