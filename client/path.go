package client

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultSocket returns the socket path rtmd and rtm use when none is given:
// $RTM_SOCKET if set, else /run/rtm/rtm.sock for root, else
// $XDG_RUNTIME_DIR/rtm.sock, else /tmp/rtm-UID.sock.
func DefaultSocket() string {
	if p := os.Getenv("RTM_SOCKET"); p != "" {
		return p
	}
	uid := os.Getuid()
	if uid == 0 {
		return "/run/rtm/rtm.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "rtm.sock")
	}
	return fmt.Sprintf("/tmp/rtm-%d.sock", uid)
}
