package itest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/shm"
)

// Ids for clients of other users. No entry in /etc/passwd or /etc/group is
// needed: rtmd takes -group as a number.
const (
	memberUID  = 4242 // in testGroup, not in rtmd's group
	outsider   = 4244 // in neither group
	testGroup  = 4243
	ownGroupID = 4245 // a uid in rtmd's own group, without -group
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run clients as other uids and give files any group (CI runs the suite as root); running as uid", os.Geteuid())
	}
}

// openToAll lets clients of other uids reach d's socket directory and run
// the rtm binary; the socket's own mode is rtmd's to set.
func (d *daemon) openToAll() {
	d.t.Helper()
	for _, p := range []string{filepath.Dir(d.socket), binDir, filepath.Join(binDir, "rtm")} {
		if err := os.Chmod(p, 0o755); err != nil {
			d.t.Fatal(err)
		}
	}
}

// rtmAs runs rtm against d as uid, with primary group gid and exactly the
// supplementary groups given, and returns its combined output.
func (d *daemon) rtmAs(uid, gid uint32, groups []uint32, args ...string) (string, error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "rtm"), append([]string{"--socket", d.socket}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: append([]uint32{}, groups...)}}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fileMode returns the mode, owner and group of a socket file or, read with
// fstat on a descriptor of its own, of d's queue, with no /dev/mqueue mount.
func fileMode(t *testing.T, fi os.FileInfo) (os.FileMode, uint32, uint32) {
	t.Helper()
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode().Perm(), st.Uid, st.Gid
}

func (d *daemon) queueMode() (os.FileMode, uint32, uint32) {
	d.t.Helper()
	q, err := mq.Open(queueName(d.socket), os.O_WRONLY, 0, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	defer q.Close()
	fi, err := q.Stat()
	if err != nil {
		d.t.Fatal(err)
	}
	return fileMode(d.t, fi)
}

func (d *daemon) socketMode() (os.FileMode, uint32, uint32) {
	d.t.Helper()
	fi, err := os.Lstat(d.socket)
	if err != nil {
		d.t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		d.t.Fatalf("%s is %v, not a socket", d.socket, fi.Mode())
	}
	return fileMode(d.t, fi)
}

// TestQueueModeUmask starts rtmd under a umask that would leave the group
// write bit (002) or take everything but the owner's (077), and checks
// that the socket and the queue get the documented modes and groups all
// the same. Without -group, a member of rtmd's own group may subscribe
// but change nothing, over the socket or through the queue: the umask 002
// hole of issue 10.
func TestQueueModeUmask(t *testing.T) {
	needRoot(t)
	egid := uint32(os.Getegid())
	for _, tc := range []struct {
		name      string
		umask     string
		args      []string
		group     uint32 // of the socket and the queue
		queueMode os.FileMode
		// A client in that group (as its primary group for rtmd's own,
		// as a supplementary one for -group's), and whether it may
		// change the tables.
		uid, gid  uint32
		groups    []uint32
		mayChange bool
	}{
		{name: "002", umask: "002", group: egid, queueMode: 0o600, uid: ownGroupID, gid: egid},
		{name: "077 -group", umask: "077", args: []string{"-group", "4243"}, group: testGroup, queueMode: 0o620,
			uid: memberUID, gid: memberUID, groups: []uint32{testGroup}, mayChange: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startRtmdAfter(t, "umask "+tc.umask, append([]string{"-mq", ""}, tc.args...)...)
			d.openToAll()
			euid := uint32(os.Geteuid())
			if mode, uid, gid := d.socketMode(); mode != 0o660 || uid != euid || gid != tc.group {
				t.Errorf("socket: mode %#o, owner %d:%d; want 0660, %d:%d", mode, uid, gid, euid, tc.group)
			}
			if mode, uid, gid := d.queueMode(); mode != tc.queueMode || uid != euid || gid != tc.group {
				t.Errorf("queue: mode %#o, owner %d:%d; want %#o, %d:%d", mode, uid, gid, tc.queueMode, euid, tc.group)
			}
			d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
			as := func(args ...string) (string, error) { return d.rtmAs(tc.uid, tc.gid, tc.groups, args...) }
			if out, err := as("route", "show"); err != nil || out != "10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n" {
				t.Errorf("route show by uid %d in the socket's group: %v, %q", tc.uid, err, out)
			}
			add := []string{"route", "add", "10.9.0.0/16", "via", "10.1.1.1", "dev", "eth0"}
			queued, qerr := as(append([]string{"--via", "mq"}, add...)...)
			if tc.mayChange {
				if qerr != nil {
					t.Fatalf("--via mq route add by -group member uid %d: %v, %s", tc.uid, qerr, queued)
				}
				d.waitSeq(2)
				return
			}
			if qerr == nil || !strings.Contains(queued, "mq_open: permission denied") {
				t.Errorf("--via mq route add by uid %d of rtmd's group: %v, %q; want permission denied at mq_open", tc.uid, qerr, queued)
			}
			if out, err := as(add...); err == nil || !strings.Contains(out, "permission denied: uid 4245 may not change the tables") {
				t.Errorf("route add by uid %d of rtmd's group: %v, %q; want permission denied", tc.uid, err, out)
			}
			if st := d.status(); st.Seq != 1 {
				t.Errorf("after the refused changes rtmd is at seq %d, want 1", st.Seq)
			}
		})
	}
}

// TestGroupMember runs rtmd with -group as a bare gid: a member (a
// supplementary group, another uid) adds a route over the socket and
// another through the queue; a uid outside the group is refused both at
// connect and at mq_open (EACCES), and changes nothing.
func TestGroupMember(t *testing.T) {
	needRoot(t)
	d := startRtmd(t, "-mq", "", "-group", "4243")
	d.openToAll()
	member := func(args ...string) (string, error) {
		return d.rtmAs(memberUID, memberUID, []uint32{testGroup}, args...)
	}
	if out, err := member("route", "add", "10.1.0.0/16", "via", "10.1.1.1", "dev", "eth0"); err != nil {
		t.Fatalf("route add by member uid %d: %v, %s", memberUID, err, out)
	}
	if out, err := member("--via", "mq", "route", "add", "10.2.0.0/16", "via", "10.1.1.1", "dev", "eth0"); err != nil {
		t.Fatalf("--via mq route add by member uid %d: %v, %s", memberUID, err, out)
	}
	d.waitSeq(2)
	if st := d.status(); st.Inputs["queue"].Accepted != 1 || st.Inputs["socket"].Accepted < 1 {
		t.Errorf("inputs %+v; want the queue's change and the socket's accepted", st.Inputs)
	}
	want := "10.1.0.0/16 via 10.1.1.1 dev eth0 proto static\n10.2.0.0/16 via 10.1.1.1 dev eth0 proto static\n"
	if out, err := member("route", "show"); err != nil || out != want {
		t.Errorf("route show by member: %v, %q; want %q", err, out, want)
	}

	outsiderRun := func(args ...string) (string, error) { return d.rtmAs(outsider, outsider, nil, args...) }
	for _, args := range [][]string{
		{"route", "show"},
		{"route", "add", "10.3.0.0/16", "via", "10.1.1.1", "dev", "eth0"},
		{"--via", "mq", "route", "add", "10.4.0.0/16", "via", "10.1.1.1", "dev", "eth0"},
	} {
		out, err := outsiderRun(args...)
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("rtm %s as uid %d outside the group: %v, %q; want permission denied", strings.Join(args, " "), outsider, err, out)
		}
	}
	// The socket answers EACCES before rtmd sees the peer, and so does the
	// queue at mq_open: checked from the client's side, in the error text.
	if out, _ := outsiderRun("status"); !strings.Contains(out, "connect: permission denied") {
		t.Errorf("status as uid %d: %q; want connect: permission denied", outsider, out)
	}
	if out, _ := outsiderRun("--via", "mq", "flush", "all"); !strings.Contains(out, "mq_open: permission denied") {
		t.Errorf("--via mq flush as uid %d: %q; want mq_open: permission denied", outsider, out)
	}
	if st := d.status(); st.Seq != 2 || st.Routes4 != 2 {
		t.Errorf("after the outsider: seq %d, %d routes; want 2, 2", st.Seq, st.Routes4)
	}
}

// TestMQOff runs rtmd without a queue: it serves, creates no queue, says
// so in status, and rtm --via mq says why it cannot send.
func TestMQOff(t *testing.T) {
	d := startRtmd(t, "-mq", "off")
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	if _, err := mq.Open(queueName(d.socket), os.O_WRONLY, 0, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open the default queue of an rtmd with -mq off: %v, want it not to exist", err)
	}
	if st := d.status(); st.Queue != "" || st.Seq != 1 {
		t.Errorf("status: queue %q at seq %d; want none at 1", st.Queue, st.Seq)
	}
	if out := d.mustRtm("status"); !strings.Contains(out, "queue none,") {
		t.Errorf("rtm status lacks queue none:\n%s", out)
	}
	_, errs, code := d.rtm("", "--via", "mq", "route", "add", "10.1.0.0/16", "via", "10.1.1.1", "dev", "eth0")
	if code == 0 || !strings.Contains(errs, "runs without a message queue (rtmd -mq off)") {
		t.Errorf("rtm --via mq with -mq off: exit %d, %q; want an error saying rtmd has no queue", code, errs)
	}
}

// TestMQRlimit starts rtmd with RLIMIT_MSGQUEUE too small for its queue, as
// when a user's other queues use up the budget: rtmd fails to start with
// an error naming the limit, its value and -mq off, and leaves nothing
// behind; with -mq off it starts under the same limit.
func TestMQRlimit(t *testing.T) {
	socket := filepath.Join(shortDir(t), "rtm.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", `ulimit -q 1000 && exec "$0" "$@"`, filepath.Join(binDir, "rtmd"), "-socket", socket, "-no-console", "-state", "none")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("rtmd under ulimit -q 1000: %v, want exit 1\n%s", err, out)
	}
	for _, w := range []string{"RLIMIT_MSGQUEUE, 1000 bytes", "this one takes 33536", "rtmd -mq off runs without the queue"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("rtmd's error lacks %q:\n%s", w, out)
		}
	}
	if _, err := os.Lstat(socket); err == nil {
		t.Errorf("rtmd that failed to start left its socket %s", socket)
	}
	if ents, _ := os.ReadDir(filepath.Dir(socket)); len(ents) != 0 {
		t.Errorf("rtmd that failed to start left %d files beside its socket", len(ents))
	}
	if _, err := os.Lstat(filepath.Join(shm.Dir, shm.DefaultName(socket)+".1")); err == nil {
		t.Errorf("rtmd that failed to start left its MAC segment")
		os.Remove(filepath.Join(shm.Dir, shm.DefaultName(socket)+".1"))
	}

	d := startRtmdAfter(t, "ulimit -q 1000", "-mq", "off")
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	if st := d.status(); st.Seq != 1 || st.Queue != "" {
		t.Errorf("rtmd -mq off under ulimit -q 1000: seq %d, queue %q", st.Seq, st.Queue)
	}
}
