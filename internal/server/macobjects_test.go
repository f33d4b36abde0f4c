package server

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

func randomMAC() mac.Addr {
	m := mac.Addr{0x02}
	rand.Read(m[1:])
	return m
}

func objectPath(m mac.Addr) string { return filepath.Join(shm.Dir, compat.ObjectFile(m)) }

func readObject(t *testing.T, m mac.Addr) string {
	t.Helper()
	b, err := os.ReadFile(objectPath(m))
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != compat.ObjectSize {
		t.Errorf("object of %d bytes", len(b))
	}
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}

// TestMACObjects: an object is there while its MAC is live, stays after a
// delete until the delete is read, and a MAC added again in between keeps
// its new object.
func TestMACObjects(t *testing.T) {
	o := newMACObjects(-1)
	a, b := randomMAC(), randomMAC()
	t.Cleanup(o.close)
	if err := o.set(a, netip.MustParseAddr("10.0.0.1"), 1); err != nil {
		t.Fatal(err)
	}
	if err := o.set(b, netip.MustParseAddr("255.255.255.255"), 2); err != nil {
		t.Fatal(err)
	}
	if got := readObject(t, a) + " " + readObject(t, b); got != "10.0.0.1 255.255.255.255" || !o.has(a) {
		t.Fatalf("objects: %s", got)
	}
	if err := o.set(a, netip.MustParseAddr("10.0.0.2"), 3); err != nil || readObject(t, a) != "10.0.0.2" {
		t.Fatalf("rewritten: %s, %v", readObject(t, a), err)
	}
	o.gone(a, 4)
	o.sweep(3)
	if o.has(a) || readObject(t, a) != "10.0.0.2" {
		t.Fatalf("a deleted MAC's object before its delete was read: %s", readObject(t, a))
	}
	o.sweep(4)
	if got := readObject(t, a); got != "<none>" {
		t.Fatalf("after the delete was read: %s", got)
	}

	// Deleted at 5, added again at 6, deleted again at 8: the object
	// goes only once 8 is read.
	o.gone(b, 5)
	o.set(b, netip.MustParseAddr("10.0.0.3"), 6)
	o.sweep(5)
	if got := readObject(t, b); got != "10.0.0.3" || !o.has(b) {
		t.Fatalf("a MAC added again: %s", got)
	}
	o.gone(b, 8)
	o.sweep(7)
	if readObject(t, b) != "10.0.0.3" {
		t.Fatal("removed before its second delete was read")
	}
	// An IP that is not IPv4 takes the MAC away from ghk84 clients.
	if err := o.set(a, netip.MustParseAddr("2001:db8::1"), 9); !errors.Is(err, compat.ErrNoForm) || o.has(a) {
		t.Fatalf("IPv6: %v", err)
	}
	o.set(a, netip.MustParseAddr("10.0.0.4"), 10)
	o.clear(11)
	if o.has(a) || readObject(t, a) != "10.0.0.4" {
		t.Fatal("flushed objects must wait for the flush to be read")
	}
	o.close()
	if readObject(t, a)+readObject(t, b) != "<none><none>" {
		t.Error("close left objects")
	}
}

// TestMACObjectReplacesPlanted: whatever someone put under a MAC's name (a
// symlink to a file of rtmd's, say) is replaced, never written through.
func TestMACObjectReplacesPlanted(t *testing.T) {
	o := newMACObjects(-1)
	t.Cleanup(o.close)
	m := randomMAC()
	target := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(target, []byte("keep"), 0o600)
	if err := os.Symlink(target, objectPath(m)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(objectPath(m)) })
	if err := o.set(m, netip.MustParseAddr("10.0.0.1"), 1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(objectPath(m))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("object: %v, %v", fi.Mode(), err)
	}
	if readObject(t, m) != "10.0.0.1" {
		t.Error("wrong content")
	}
}
