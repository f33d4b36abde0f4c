package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SystemSocket is the socket of the host's rtmd, run as root.
const SystemSocket = "/run/rtm/rtm.sock"

// ErrNoSocket is wrapped by the error of DefaultSocket and DaemonSocket when
// no default path applies. There is no fallback in a place everyone can
// write to, such as /tmp: anyone could plant a socket there first.
var ErrNoSocket = errors.New("no default rtmd socket")

// DefaultSocket returns the socket path a client uses when it is given
// none: $RTM_SOCKET if set, else SystemSocket if it exists (whoever owns
// it: Dial checks who serves it), else $XDG_RUNTIME_DIR/rtm.sock. With
// none of these it returns an error wrapping ErrNoSocket that says to set
// $RTM_SOCKET or pass a path.
func DefaultSocket() (string, error) {
	return defaultSocket(os.Getenv, func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
}

// DaemonSocket returns the socket path rtmd listens on when it is given
// none: $RTM_SOCKET if set, else SystemSocket when run as root, else
// $XDG_RUNTIME_DIR/rtm.sock. With none of these it returns an error
// wrapping ErrNoSocket.
func DaemonSocket() (string, error) {
	return daemonSocket(os.Getenv, os.Geteuid())
}

func defaultSocket(getenv func(string) string, exists func(string) bool) (string, error) {
	if p := getenv("RTM_SOCKET"); p != "" {
		return p, nil
	}
	if exists(SystemSocket) {
		return SystemSocket, nil
	}
	if p, ok := userSocket(getenv); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: $RTM_SOCKET is unset, %s does not exist and $XDG_RUNTIME_DIR is %s; set $RTM_SOCKET or pass --socket PATH",
		ErrNoSocket, SystemSocket, describeRuntimeDir(getenv))
}

func daemonSocket(getenv func(string) string, euid int) (string, error) {
	if p := getenv("RTM_SOCKET"); p != "" {
		return p, nil
	}
	if euid == 0 {
		return SystemSocket, nil
	}
	if p, ok := userSocket(getenv); ok {
		return p, nil
	}
	return "", fmt.Errorf("%w: $RTM_SOCKET is unset, not running as root and $XDG_RUNTIME_DIR is %s; set $RTM_SOCKET or pass -socket PATH",
		ErrNoSocket, describeRuntimeDir(getenv))
}

// userSocket returns rtm.sock in $XDG_RUNTIME_DIR, which the XDG base
// directory spec makes the user's own (mode 0700). A relative value is
// to be ignored, says the spec.
func userSocket(getenv func(string) string) (string, bool) {
	d := getenv("XDG_RUNTIME_DIR")
	if d == "" || !filepath.IsAbs(d) {
		return "", false
	}
	return filepath.Join(d, "rtm.sock"), true
}

func describeRuntimeDir(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return fmt.Sprintf("%q, not an absolute path", d)
	}
	return "unset"
}
