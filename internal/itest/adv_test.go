package itest_test

import (
	"strings"
	"testing"
)

// TestProtoZeroNotSilentlyStatic: a route written with proto 0 is either
// kept as proto 0 or refused with an error that names proto; it is never
// stored as another protocol, whichever way it comes in.
func TestProtoZeroNotSilentlyStatic(t *testing.T) {
	d := startRtmd(t)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		dst         string
	}{
		{name: "add", args: []string{"route", "add", "10.50.0.0/16", "dev", "eth0", "proto", "0"}, dst: "10.50.0.0/16"},
		{name: "load", stdin: "10.51.0.0/16 dev eth0 proto 0\n", args: []string{"route", "load", "-"}, dst: "10.51.0.0/16"},
		{name: "batch", stdin: "route add 10.52.0.0/16 dev eth0 proto 0\n", args: []string{"-batch", "-"}, dst: "10.52.0.0/16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := d.rtm(tc.stdin, tc.args...)
			show := d.mustRtm("route", "show", tc.dst)
			switch {
			case code != 0 && !strings.Contains(errs, "proto"):
				t.Errorf("rtm %v: exit %d with %q, want an error that names proto", tc.args, code, errs)
			case code != 0 && show != "":
				t.Errorf("rtm %v failed, yet route show prints %q", tc.args, show)
			case code == 0 && !strings.Contains(show, "proto 0"):
				t.Errorf("rtm %v stored %q, want proto 0 kept", tc.args, show)
			}
		})
	}
}
