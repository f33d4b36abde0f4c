package shm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

func testName(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("rtm-test-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() {
		shm.RemoveStale(name)
		if _, err := os.Stat(filepath.Join(shm.Dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	})
	return name
}

func TestSetRead(t *testing.T) {
	name := testName(t)
	s, err := shm.Create(name, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := shm.Create(name, 8, 3); err == nil {
		t.Error("Create of an existing name succeeded")
	}
	m := mac.Addr{2, 0, 0x5e, 1, 2, 3}
	s.Set(0, m, netip.MustParseAddr("10.1.2.3"))
	s.Set(7, m, netip.MustParseAddr("2001:db8::1"))
	s.SetCounters(2, 42)
	v, err := shm.Open(name)
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
	if err := shm.Unlink(name); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := v.Read(7); !ok {
		t.Error("a mapping did not survive Unlink")
	}
}

func TestOpenBadHeader(t *testing.T) {
	name := testName(t)
	for _, content := range [][]byte{nil, make([]byte, 64), []byte("RTMMACv1" + string(make([]byte, 200)))} {
		os.WriteFile(filepath.Join(shm.Dir, name), content, 0o600)
		if v, err := shm.Open(name); !errors.Is(err, shm.ErrLayout) {
			t.Errorf("Open(%d bytes) = %v, %v; want ErrLayout", len(content), v, err)
		}
	}
	// A header that claims more records than the object holds.
	s, err := shm.Create(name+"x", 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	p := filepath.Join(shm.Dir, name+"x")
	b, _ := os.ReadFile(p)
	binary.LittleEndian.PutUint32(b[16:], 1000)
	os.WriteFile(p, b, 0o600)
	if _, err := shm.Open(name + "x"); !errors.Is(err, shm.ErrLayout) {
		t.Errorf("Open of a too-short object = %v, want ErrLayout", err)
	}
	os.Remove(p)
	if _, err := shm.Open("no-such-rtm-object"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing object = %v", err)
	}
	if _, err := shm.Open("../etc/passwd"); err == nil {
		t.Error("Open accepted a name with a slash")
	}
}

// TestNoTornReads has one writer rewrite records with values whose parts
// must agree, while readers check every value they see.
func TestNoTornReads(t *testing.T) {
	name := testName(t)
	s, err := shm.Create(name, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := shm.Open(name)
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
		s.Set(i%4, mac.Addr{0, 0, 0, 0, 0, x}, netip.AddrFrom16(a))
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads", reads.Load())
}

func TestRemoveStale(t *testing.T) {
	name := testName(t)
	for _, n := range []string{name, name + ".1", name + ".7"} {
		s, err := shm.Create(n, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	other := name + "x"
	s, _ := shm.Create(other, 1, 1)
	s.Close()
	defer shm.Unlink(other)
	removed, err := shm.RemoveStale(name)
	if err != nil || len(removed) != 3 {
		t.Errorf("RemoveStale = %v, %v; want 3 removed", removed, err)
	}
	if _, err := os.Stat(filepath.Join(shm.Dir, other)); err != nil {
		t.Errorf("RemoveStale removed %s: %v", other, err)
	}
}

// TestReadOnly checks that a client's mapping cannot be written: a child
// process maps the segment as a client does and writes to it; the write
// must fault and kill it.
func TestReadOnly(t *testing.T) {
	if name := os.Getenv("RTM_SHM_WRITE"); name != "" {
		v, err := shm.Open(name)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(3)
		}
		shm.WriteForTest(v)
		fmt.Println("wrote")
		os.Exit(0)
	}
	name := testName(t)
	s, err := shm.Create(name, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadOnly$")
	cmd.Env = append(os.Environ(), "RTM_SHM_WRITE="+name)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || strings.Contains(string(out), "wrote") || !strings.Contains(string(out), "SIGSEGV") && !strings.Contains(string(out), "unexpected fault address") {
		t.Fatalf("child writing a read-only mapping: %v, want a SIGSEGV\n%s", err, out)
	}
}
