package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCompatSockets: -compat-socket PATH[:LAYOUT], the default from
// -compat-layout, a colon that names no layout, and the errors.
func TestCompatSockets(t *testing.T) {
	got, err := compatSockets([]string{"/run/a.sock", "/run/b.sock:ghk84", "rel/c:u16", "/run/d:e.sock", "/run/f:course"}, "u16")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, cs := range got {
		fmt.Fprintf(&b, "%s=%s ", cs.Path, cs.Layout)
	}
	if want := "/run/a.sock=u16 /run/b.sock=ghk84 rel/c=u16 /run/d:e.sock=u16 /run/f=course "; b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	for _, tc := range []struct {
		specs []string
		def   string
		want  string
	}{
		{[]string{"/a"}, "u32", `-compat-layout: layout "u32": want one of course, u16 or ghk84`},
		{[]string{":ghk84"}, "course", `-compat-socket ":ghk84": empty path`},
		{[]string{"/a:u16", "/a"}, "course", `-compat-socket "/a": /a given twice`},
	} {
		if _, err := compatSockets(tc.specs, tc.def); err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %s", tc.specs, err, tc.want)
		}
	}
}
