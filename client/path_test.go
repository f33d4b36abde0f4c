package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/client"
)

func TestDefaultSocket(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		system    bool // SystemSocket exists
		want      string
		wantErrIn string // "" means no error
	}{
		{name: "RTM_SOCKET wins", env: map[string]string{"RTM_SOCKET": "/x/s.sock", "XDG_RUNTIME_DIR": "/run/user/1000"}, system: true, want: "/x/s.sock"},
		{name: "system socket", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, system: true, want: client.SystemSocket},
		{name: "system socket without XDG", system: true, want: client.SystemSocket},
		{name: "user socket", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, want: "/run/user/1000/rtm.sock"},
		{name: "nothing", wantErrIn: "$XDG_RUNTIME_DIR is unset; set $RTM_SOCKET or pass --socket PATH"},
		{name: "relative XDG ignored", env: map[string]string{"XDG_RUNTIME_DIR": "run"}, wantErrIn: `$XDG_RUNTIME_DIR is "run", not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exists := func(p string) bool {
				if p != client.SystemSocket {
					t.Errorf("exists(%q): want only %q asked", p, client.SystemSocket)
				}
				return tt.system
			}
			got, err := client.DefaultSocketWith(func(k string) string { return tt.env[k] }, exists)
			checkSocket(t, got, err, tt.want, tt.wantErrIn)
		})
	}
}

func TestDaemonSocket(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		euid      int
		want      string
		wantErrIn string
	}{
		{name: "RTM_SOCKET wins for root", env: map[string]string{"RTM_SOCKET": "/x/s.sock"}, euid: 0, want: "/x/s.sock"},
		{name: "RTM_SOCKET wins for a user", env: map[string]string{"RTM_SOCKET": "/x/s.sock", "XDG_RUNTIME_DIR": "/run/user/1000"}, euid: 1000, want: "/x/s.sock"},
		{name: "root", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/0"}, euid: 0, want: client.SystemSocket},
		{name: "user", env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, euid: 1000, want: "/run/user/1000/rtm.sock"},
		{name: "user without XDG", euid: 1000, wantErrIn: "not running as root and $XDG_RUNTIME_DIR is unset; set $RTM_SOCKET or pass -socket PATH"},
		{name: "user with relative XDG", env: map[string]string{"XDG_RUNTIME_DIR": "tmp"}, euid: 1000, wantErrIn: `"tmp", not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.DaemonSocketWith(func(k string) string { return tt.env[k] }, tt.euid)
			checkSocket(t, got, err, tt.want, tt.wantErrIn)
		})
	}
}

func checkSocket(t *testing.T, got string, err error, want, wantErrIn string) {
	t.Helper()
	if wantErrIn == "" {
		if err != nil || got != want {
			t.Errorf("socket = %q, %v; want %q", got, err, want)
		}
		return
	}
	if err == nil || !errors.Is(err, client.ErrNoSocket) || !strings.Contains(err.Error(), wantErrIn) {
		t.Errorf("socket = %q, %v; want an ErrNoSocket error containing %q", got, err, wantErrIn)
	}
	if got != "" {
		t.Errorf("socket = %q with an error; want \"\"", got)
	}
}
