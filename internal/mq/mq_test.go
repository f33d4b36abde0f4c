package mq_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/mq"
)

func testQueue(t *testing.T, attr *mq.Attr) (string, *mq.Queue) {
	t.Helper()
	name := fmt.Sprintf("/rtm-test-%d-%s", os.Getpid(), t.Name())
	q, err := mq.Open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600, attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Close()
		mq.Unlink(name)
		if _, err := mq.Open(name, os.O_RDONLY, 0, nil); err == nil {
			t.Errorf("queue %s left behind", name)
		}
	})
	return name, q
}

func TestSendReceive(t *testing.T) {
	_, q := testQueue(t, &mq.Attr{MaxMsg: 4, MsgSize: 64})
	if a := q.Attr(); a.MaxMsg != 4 || a.MsgSize != 64 {
		t.Fatalf("Attr = %+v", a)
	}
	for i, m := range []string{"one", "two", "three"} {
		if err := q.Send([]byte(m), uint(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	var got []string
	for range 3 {
		n, prio, err := q.Receive(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%d", buf[:n], prio))
	}
	// Higher priority first, then in order.
	if fmt.Sprint(got) != "[two/1 one/0 three/0]" {
		t.Errorf("received %v", got)
	}
	if _, _, err := q.Receive(make([]byte, 10)); err == nil {
		t.Error("Receive accepted a buffer shorter than MsgSize")
	}
}

func TestLimits(t *testing.T) {
	_, q := testQueue(t, &mq.Attr{MaxMsg: 2, MsgSize: 16})
	if err := q.Send(make([]byte, 17), 0); !errors.Is(err, mq.ErrMsgSize) {
		t.Errorf("oversized Send = %v, want ErrMsgSize", err)
	}
	q.Send([]byte("a"), 0)
	q.Send([]byte("b"), 0)
	q.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if err := q.Send([]byte("c"), 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Send on a full queue = %v, want a deadline error", err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Error("Send on a full queue did not wait for its deadline")
	}
	l := mq.ReadLimits()
	if l.MsgMax <= 0 || l.MsgSizeMax <= 0 {
		t.Errorf("ReadLimits = %+v", l)
	}
}

func TestReceiveDeadlineAndClose(t *testing.T) {
	_, q := testQueue(t, &mq.Attr{MaxMsg: 2, MsgSize: 16})
	buf := make([]byte, 16)
	q.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, _, err := q.Receive(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Receive on an empty queue = %v, want a deadline error", err)
	}
	q.SetReadDeadline(time.Time{})
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { _, _, err = q.Receive(buf) })
	time.Sleep(30 * time.Millisecond)
	q.Close()
	wg.Wait()
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("Receive interrupted by Close = %v, want ErrClosed", err)
	}
}

func TestWakeOnSend(t *testing.T) {
	name, q := testQueue(t, &mq.Attr{MaxMsg: 2, MsgSize: 16})
	w, err := mq.Open(name, os.O_WRONLY, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.Send([]byte("hello"), 0)
	}()
	buf := make([]byte, 16)
	n, _, err := q.Receive(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Errorf("Receive = %q, %v", buf[:n], err)
	}
}

func TestUnlink(t *testing.T) {
	name, q := testQueue(t, nil)
	if err := mq.Unlink(name); err != nil {
		t.Fatal(err)
	}
	if _, err := mq.Open(name, os.O_RDONLY, 0, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open after Unlink = %v", err)
	}
	// The open queue still works.
	if err := q.Send([]byte("x"), 0); err != nil {
		t.Error(err)
	}
	if err := mq.Unlink(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Unlink = %v", err)
	}
	if _, err := mq.Open("no-slash", os.O_RDONLY, 0, nil); err == nil {
		t.Error("Open accepted a name without a leading slash")
	}
}

// TestModeOwner checks that Chmod sets the mode exactly, whatever the umask
// left of the one the queue was created with, and that Chown and Stat see
// the descriptor's inode.
func TestModeOwner(t *testing.T) {
	_, q := testQueue(t, &mq.Attr{MaxMsg: 2, MsgSize: 16})
	if fi, err := q.Stat(); err != nil || fi.Mode().Perm()&^0o600 != 0 {
		t.Fatalf("Stat of a new queue = %v, %v; want mode 0600 less the umask", fi, err)
	}
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 4243 // root may give the queue any group, one with no name included
	}
	if err := q.Chown(-1, gid); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o620, 0o400, 0o660} {
		if err := q.Chmod(mode); err != nil {
			t.Fatal(err)
		}
		fi, err := q.Stat()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || int(st.Gid) != gid || int(st.Uid) != os.Geteuid() {
			t.Errorf("after Chmod(%#o), Chown(-1, %d): mode %#o, owner %d:%d", mode, gid, fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
}

// TestBytes checks the RLIMIT_MSGQUEUE charge of the queue rtmd creates
// against the figure docs/security.md gives.
func TestBytes(t *testing.T) {
	if got := (mq.Attr{MaxMsg: 8, MsgSize: 4096}).Bytes(); got != 33536 {
		t.Errorf("Bytes of 8 x 4096 = %d, want 33536", got)
	}
}
