package server

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/compat"
	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
)

// macObjects keeps, while a ghk84 compat socket is open, one POSIX
// shared-memory object per MAC entry whose IP is IPv4, named by the MAC's
// text (/dev/shm/02:00:5e:10:00:01), holding the IP as NUL-padded text:
// those clients read a MAC's IP there.
//
// An object is written whole under a temporary name and renamed over the
// MAC's name, so a client never sees it empty or half written, and one that
// has it open keeps what it opened. The rename also replaces whatever
// someone else put under that name, where the directory lets rtmd (root);
// where it does not, the MAC is not sent to those clients, and rtmd says so.
//
// An object is written before the change that creates the MAC is published.
// Once the MAC is deleted (or its IP is no longer IPv4) the object stays
// until every ghk84 client has read the DELETE (sweep), so that a client
// still working through its backlog never opens a missing object.
type macObjects struct {
	gid int // the objects' group, or -1
	tmp string

	mu   sync.Mutex
	live map[mac.Addr]bool // written and current; read by the writers

	// Owned by the loop: objects to remove once every ghk84 client has
	// read the change of this sequence number.
	pending map[mac.Addr]uint64
}

func newMACObjects(gid int) *macObjects {
	var r [8]byte
	rand.Read(r[:])
	return &macObjects{
		gid:     gid,
		tmp:     fmt.Sprintf(".rtmd-%d-%s-", os.Getpid(), hex.EncodeToString(r[:])),
		live:    make(map[mac.Addr]bool),
		pending: make(map[mac.Addr]uint64),
	}
}

// has reports whether m's object is current, so that a ghk84 client may be
// sent m.
func (o *macObjects) has(m mac.Addr) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.live[m]
}

// set writes m's object for ip, at sequence seq. An IP that is not IPv4,
// or an object rtmd cannot write, makes m absent for ghk84 clients (the
// error says why).
func (o *macObjects) set(m mac.Addr, ip netip.Addr, seq uint64) error {
	err := compat.HoldsIP(ip)
	if err == nil {
		err = o.write(m, ip)
	}
	if err != nil {
		o.gone(m, seq)
		return err
	}
	o.mu.Lock()
	o.live[m] = true
	o.mu.Unlock()
	delete(o.pending, m)
	return nil
}

// gone marks m's object for removal once the change of sequence seq has
// been read.
func (o *macObjects) gone(m mac.Addr, seq uint64) {
	o.mu.Lock()
	was := o.live[m]
	delete(o.live, m)
	o.mu.Unlock()
	if was {
		o.pending[m] = seq
	}
}

// clear marks every object for removal, at seq.
func (o *macObjects) clear(seq uint64) {
	o.mu.Lock()
	for m := range o.live {
		o.pending[m] = seq
	}
	clear(o.live)
	o.mu.Unlock()
}

// sweepMax is the most objects one sweep removes: a flush of a big MAC
// table is removed over several turns, so the loop is not held up.
const sweepMax = 1024

// sweep removes the objects whose removal every ghk84 client has read:
// read is the least sequence number they have all read through. It
// returns how many wait for a client to read further.
func (o *macObjects) sweep(read uint64) (held int) {
	n := 0
	for m, seq := range o.pending {
		switch {
		case seq > read:
			held++
		case n < sweepMax:
			o.remove(m)
			delete(o.pending, m)
			n++
		}
	}
	return held
}

// close removes every object, current or pending.
func (o *macObjects) close() {
	o.mu.Lock()
	for m := range o.live {
		o.pending[m] = 0
	}
	clear(o.live)
	o.mu.Unlock()
	for m := range o.pending {
		o.remove(m)
	}
	clear(o.pending)
}

func (o *macObjects) remove(m mac.Addr) {
	// The rename made the name ours; a foreign object under it was never
	// live.
	os.Remove(filepath.Join(shm.Dir, compat.ObjectFile(m)))
}

// write writes m's object: a new file under a temporary name, created with
// O_EXCL, renamed over the MAC's name.
func (o *macObjects) write(m mac.Addr, ip netip.Addr) error {
	name := filepath.Join(shm.Dir, compat.ObjectFile(m))
	tmp := filepath.Join(shm.Dir, o.tmp+compat.ObjectFile(m))
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return fmt.Errorf("MAC object %s: %w", name, os.NewSyscallError("open", err))
	}
	fail := func(op string, err error) error {
		unix.Close(fd)
		unix.Unlink(tmp)
		return fmt.Errorf("MAC object %s: %w", name, os.NewSyscallError(op, err))
	}
	if err := unix.Fchmod(fd, 0o640); err != nil { // against the umask
		return fail("fchmod", err)
	}
	if o.gid != -1 {
		if err := unix.Fchown(fd, -1, o.gid); err != nil {
			return fail("fchown", err)
		}
	}
	var buf [compat.ObjectSize]byte
	if n, err := unix.Write(fd, compat.AppendObject(buf[:0], ip)); err != nil || n != len(buf) {
		return fail("write", cmp.Or(err, errors.New("short write")))
	}
	if err := unix.Rename(tmp, name); err != nil {
		// EPERM: another user's object under that name, in the sticky
		// /dev/shm.
		return fail("rename", err)
	}
	return unix.Close(fd)
}
