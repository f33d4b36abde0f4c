package shm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

func testName(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("rtm-test-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() {
		if _, foreign, err := shm.RemoveStale(name); err != nil || len(foreign) > 0 {
			t.Errorf("RemoveStale(%s) left %v: %v", name, foreign, err)
		}
	})
	return name
}

var euid = uint32(os.Geteuid())

func TestSetRead(t *testing.T) {
	name := testName(t)
	s, err := shm.Create(name, 8, 3, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\.3\.[0-9a-f]{16}$`).MatchString(s.Name) {
		t.Errorf("Create(%s, gen 3) named %s, want %s.3.RANDOM", name, s.Name, name)
	}
	fi, err := os.Stat(filepath.Join(shm.Dir, s.Name))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode of %s = %v, %v; want 0640", s.Name, fi.Mode(), err)
	}
	s2, err := shm.Create(name, 8, 3, -1)
	if err != nil || s2.Name == s.Name {
		t.Fatalf("second Create of generation 3 = %v, %v; want a new name", s2, err)
	}
	s2.Close()
	shm.Unlink(s2.Name)
	m := mac.Addr{2, 0, 0x5e, 1, 2, 3}
	s.Set(0, m, netip.MustParseAddr("10.1.2.3"))
	s.Set(7, m, netip.MustParseAddr("2001:db8::1"))
	s.SetCounters(2, 42)
	v, err := shm.Open(s.Name, euid)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Capacity != 8 || v.Gen != 3 || v.Seq() != 42 || v.Live() != 2 {
		t.Errorf("header: capacity %d gen %d seq %d live %d", v.Capacity, v.Gen, v.Seq(), v.Live())
	}
	for _, tt := range []struct {
		slot int
		ip   string
	}{{0, "10.1.2.3"}, {7, "2001:db8::1"}, {3, ""}, {8, ""}, {-1, ""}} {
		gm, ip, ok := v.Read(tt.slot)
		if ok != (tt.ip != "") || ok && (gm != m || ip.String() != tt.ip) {
			t.Errorf("Read(%d) = %v, %v, %v; want %s", tt.slot, gm, ip, ok, tt.ip)
		}
	}
	s.Clear(0)
	if _, _, ok := v.Read(0); ok {
		t.Error("Read of a cleared record is in use")
	}
	if err := shm.Unlink(s.Name); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := v.Read(7); !ok {
		t.Error("a mapping did not survive Unlink")
	}
}

func TestOpenBadHeader(t *testing.T) {
	name := testName(t)
	p := filepath.Join(shm.Dir, name)
	for _, content := range [][]byte{nil, make([]byte, 64), []byte("RTMMACv1" + string(make([]byte, 200)))} {
		os.WriteFile(p, content, 0o600)
		if v, err := shm.Open(name, euid); !errors.Is(err, shm.ErrLayout) {
			t.Errorf("Open(%d bytes) = %v, %v; want ErrLayout", len(content), v, err)
		}
	}
	os.Remove(p)
	// A header that claims more records than the object holds.
	s, err := shm.Create(name, 4, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	p = filepath.Join(shm.Dir, s.Name)
	b, _ := os.ReadFile(p)
	binary.LittleEndian.PutUint32(b[16:], 1000)
	os.WriteFile(p, b, 0o600)
	if _, err := shm.Open(s.Name, euid); !errors.Is(err, shm.ErrLayout) || !strings.Contains(err.Error(), "header says 1000 records") {
		t.Errorf("Open of a too-short object = %v, want ErrLayout naming the header's capacity", err)
	}
	os.Remove(p)
	if _, err := shm.Open(name+".nothing", euid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing object = %v", err)
	}
	if _, err := shm.Open("../etc/passwd", euid); err == nil {
		t.Error("Open accepted a name with a slash")
	}
}

// TestOpenUntrusted plants what is not rtmd's segment at a name: Open must
// refuse each at once, with an error that names the object and the fault,
// and never block (a FIFO) or follow a link.
func TestOpenUntrusted(t *testing.T) {
	base := testName(t)
	good, err := shm.Create(base, 4, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	good.Close()
	goodPath := filepath.Join(shm.Dir, good.Name)
	plant := func(name string, make func(path string) error) string {
		t.Helper()
		if err := make(filepath.Join(shm.Dir, name)); err != nil {
			t.Fatal(err)
		}
		return name
	}
	tests := []struct {
		name  string
		owner uint32
		want  string
	}{
		{plant(base+".fifo", func(p string) error { return syscall.Mkfifo(p, 0o666) }), euid, "a FIFO, not a regular file"},
		{plant(base+".link", func(p string) error { return os.Symlink(goodPath, p) }), euid, "a symbolic link"},
		{plant(base+".dir", func(p string) error { return os.Mkdir(p, 0o700) }), euid, "a directory, not a regular file"},
		// A good segment, but not of the uid that named it.
		{good.Name, euid + 1, fmt.Sprintf("owned by uid %d, want rtmd's uid %d", euid, euid+1)},
	}
	for _, n := range []string{".fifo", ".link", ".dir"} {
		defer os.Remove(filepath.Join(shm.Dir, base+n))
	}
	for _, tt := range tests {
		t.Run(tt.name[len(base):], func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				v, err := shm.Open(tt.name, tt.owner)
				if v != nil {
					v.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, shm.ErrUntrusted) || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Open(%s) = %v; want ErrUntrusted naming it and %q", tt.name, err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Open(%s) blocks", tt.name)
			}
		})
	}
	if os.Geteuid() == 0 {
		// Root can make an object that is another user's, as an attacker's
		// own would be.
		if err := os.Chown(goodPath, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := shm.Open(good.Name, 0); !errors.Is(err, shm.ErrUntrusted) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("Open of an object of uid 65534 = %v, want ErrUntrusted", err)
		}
	}
	os.Remove(goodPath)
}

// TestNoTornReads has one writer rewrite records with values whose parts
// must agree, while readers check every value they see.
func TestNoTornReads(t *testing.T) {
	name := testName(t)
	s, err := shm.Create(name, 4, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := shm.Open(s.Name, euid)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				for slot := range 4 {
					m, ip, ok := v.Read(slot)
					if !ok {
						continue
					}
					a := ip.As16()
					// The writer puts the MAC's last byte in every
					// byte of the IP.
					for _, x := range a {
						if x != m[5] {
							t.Errorf("torn read: mac %v ip %v", m, ip)
							stop.Store(true)
							return
						}
					}
					reads.Add(1)
				}
			}
		})
	}
	for i := range 200000 {
		x := byte(i)
		var a [16]byte
		for j := range a {
			a[j] = x
		}
		if err := s.Set(i%4, mac.Addr{0, 0, 0, 0, 0, x}, netip.AddrFrom16(a)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads", reads.Load())
}

// TestTruncated truncates a segment under rtmd's mapping and a reader's,
// while the reader reads: nobody dies; reads say not found, Find and the
// writes return ErrTruncated, and Check reports it.
func TestTruncated(t *testing.T) {
	name := testName(t)
	const capacity = 1024 // several pages
	s, err := shm.Create(name, capacity, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := mac.Addr{2, 0, 0, 0, 0, 1}
	last := capacity - 1
	for _, slot := range []int{0, last} {
		if err := s.Set(slot, m, netip.MustParseAddr("10.0.0.1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check of a whole segment: %v", err)
	}
	v, err := shm.Open(s.Name, euid)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Reads all along, before and after the truncation but never across
	// it: under the race detector an atomic load is done again in its C
	// runtime, where a fault that lands between the two loads cannot be
	// recovered. A build without it has no such window.
	var truncating sync.RWMutex
	wg.Go(func() {
		for !stop.Load() {
			truncating.RLock()
			v.Read(last)
			truncating.RUnlock()
		}
	})
	// Keep the first page: the header and slot 0 stay readable.
	truncating.Lock()
	err = os.Truncate(filepath.Join(shm.Dir, s.Name), 4096)
	truncating.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := v.Read(last); ok || !v.Faulted() {
		t.Errorf("Read past the end = %v, faulted %v; want not found, faulted", ok, v.Faulted())
	}
	if _, _, ok := v.Read(0); !ok {
		t.Error("Read of a record that is still there failed")
	}
	if _, found, err := v.Find(mac.Addr{9}); found || !errors.Is(err, shm.ErrTruncated) {
		t.Errorf("Find over the end = %v, %v; want ErrTruncated", found, err)
	}
	if err := s.Set(last, m, netip.MustParseAddr("10.0.0.2")); !errors.Is(err, shm.ErrTruncated) || !strings.Contains(err.Error(), s.Name) {
		t.Errorf("Set past the end = %v, want ErrTruncated naming %s", err, s.Name)
	}
	if err := s.Clear(last); !errors.Is(err, shm.ErrTruncated) {
		t.Errorf("Clear past the end = %v, want ErrTruncated", err)
	}
	if err := s.Check(); !errors.Is(err, shm.ErrTruncated) {
		t.Errorf("Check of a truncated segment = %v, want ErrTruncated", err)
	}
	// Nothing left at all: the header faults too.
	if err := os.Truncate(filepath.Join(shm.Dir, s.Name), 0); err != nil {
		t.Fatal(err)
	}
	if v.Seq() != 0 || v.Flush() != 0 {
		t.Error("header of an empty object read non-zero")
	}
	if err := s.SetCounters(1, 2); !errors.Is(err, shm.ErrTruncated) {
		t.Errorf("SetCounters on an empty object = %v, want ErrTruncated", err)
	}
	if err := s.SetFlush(2); !errors.Is(err, shm.ErrTruncated) {
		t.Errorf("SetFlush on an empty object = %v, want ErrTruncated", err)
	}
	stop.Store(true)
	wg.Wait()
	if _, err := shm.Open(s.Name, euid); !errors.Is(err, shm.ErrLayout) {
		t.Errorf("Open of the emptied object = %v, want ErrLayout", err)
	}
	shm.Unlink(s.Name)
	if err := s.Check(); err == nil {
		t.Error("Check of an unlinked segment passed")
	}
}

// TestFaultElsewhere checks that the fault protection hides only faults
// inside the segment: a fault at another address under the same
// protection still panics.
func TestFaultElsewhere(t *testing.T) {
	name := testName(t)
	s, err := shm.Create(name, 1, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer shm.Unlink(s.Name)
	v, err := shm.Open(s.Name, euid)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	gone, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	unix.Munmap(gone)
	func() {
		defer func() {
			if _, ok := recover().(runtime.Error); !ok {
				t.Error("a fault at an unmapped address under the protection did not panic on")
			}
		}()
		x, err := shm.ReadUnderGuardForTest(v, gone)
		t.Errorf("read of an unmapped address = %v, %v", x, err)
	}()
	if v.Faulted() {
		t.Error("faults outside the view marked it faulted")
	}
}

func TestRemoveStale(t *testing.T) {
	name := testName(t)
	var made []string
	for range 3 {
		s, err := shm.Create(name, 1, 1, -1)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		made = append(made, s.Name)
	}
	other := name + "x"
	os.WriteFile(filepath.Join(shm.Dir, other), nil, 0o600)
	defer os.Remove(filepath.Join(shm.Dir, other))
	// Not rtmd's to remove: a FIFO and a symbolic link of the same prefix.
	fifo, link := filepath.Join(shm.Dir, name+".9.fifo"), filepath.Join(shm.Dir, name+".9.link")
	syscall.Mkfifo(fifo, 0o600)
	defer os.Remove(fifo)
	os.Symlink(filepath.Join(shm.Dir, other), link)
	defer os.Remove(link)
	removed, foreign, err := shm.RemoveStale(name)
	slices.Sort(removed)
	slices.Sort(made)
	if err != nil || !slices.Equal(removed, made) {
		t.Errorf("RemoveStale = %v, %v; want %v removed", removed, err, made)
	}
	if len(foreign) != 2 || !strings.Contains(strings.Join(foreign, " "), "a FIFO") {
		t.Errorf("RemoveStale foreign = %v, want the FIFO and the link", foreign)
	}
	for _, p := range []string{fifo, link, filepath.Join(shm.Dir, other)} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("RemoveStale removed %s: %v", p, err)
		}
	}
	if os.Geteuid() == 0 {
		// A regular file of another uid is left too.
		p := filepath.Join(shm.Dir, name+".9.theirs")
		os.WriteFile(p, nil, 0o600)
		defer os.Remove(p)
		os.Chown(p, 65534, 65534)
		removed, foreign, _ := shm.RemoveStale(name)
		if len(removed) != 0 || !strings.Contains(strings.Join(foreign, " "), "uid 65534") {
			t.Errorf("RemoveStale = %v, foreign %v; want the file of uid 65534 left", removed, foreign)
		}
	}
	os.Remove(fifo)
	os.Remove(link)
}

// TestReadOnly checks that a client's mapping cannot be written: a child
// process maps the segment as a client does and writes to it; the write
// must fault and kill it.
func TestReadOnly(t *testing.T) {
	if name := os.Getenv("RTM_SHM_WRITE"); name != "" {
		v, err := shm.Open(name, euid)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(3)
		}
		shm.WriteForTest(v)
		fmt.Println("wrote")
		os.Exit(0)
	}
	name := testName(t)
	s, err := shm.Create(name, 1, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadOnly$")
	cmd.Env = append(os.Environ(), "RTM_SHM_WRITE="+s.Name)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || strings.Contains(string(out), "wrote") || !strings.Contains(string(out), "SIGSEGV") && !strings.Contains(string(out), "unexpected fault address") {
		t.Fatalf("child writing a read-only mapping: %v, want a SIGSEGV\n%s", err, out)
	}
}
