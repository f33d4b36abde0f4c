package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBindUnix checks the socket bindUnix makes: mode 0660 and the group
// asked for, connectable at path and nowhere else, also for a path too long
// to bind its temporary name beside; and that it never replaces a file.
func TestBindUnix(t *testing.T) {
	base, err := os.MkdirTemp("", "rtmperm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	short, long := filepath.Join(base, "s"), filepath.Join(base, strings.Repeat("d", 94-len(base)))
	for _, dir := range []string{short, long} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 4243 // root gives any group, one with no name included
	}
	for name, path := range map[string]string{"short": filepath.Join(short, "s.sock"), "long": filepath.Join(long, "s.sock")} {
		t.Run(name, func(t *testing.T) {
			if name == "long" && len(path) != 102 {
				t.Fatalf("path of %d bytes, want 102: room for the socket, not for its temporary name", len(path))
			}
			ln, err := bindUnix(path, gid)
			if err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			defer ln.Close()
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != os.ModeSocket|0o660 || int(st.Gid) != gid || st.Nlink != 1 {
				t.Errorf("socket %s: mode %v, gid %d, %d links; want Srw-rw----, %d, 1", path, fi.Mode(), st.Gid, st.Nlink, gid)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
				t.Errorf("the socket's directory holds %d entries, want the socket alone", len(ents))
			}
			if _, err := bindUnix(path, gid); err == nil || !strings.Contains(err.Error(), "another rtmd took the path") {
				t.Errorf("bindUnix on a taken path = %v, want an error", err)
			}
		})
	}
}

func TestLookupGroup(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "", want: -1},
		{in: "root", want: 0},
		{in: "4243", want: 4243},
		{in: "0", want: 0},
		{in: "no such group here", want: -1, err: true},
		{in: "4294967295", want: -1, err: true}, // (gid_t)-1 is "no change" to chown
	} {
		got, err := lookupGroup(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("lookupGroup(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
