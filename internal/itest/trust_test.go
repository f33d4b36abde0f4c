package itest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/wire"
)

// plantedUID is the uid of the user who plants a socket.
const plantedUID = 4243

// The planted-socket helper starts from init, before TestMain, so that
// main_test.go need not know about it.
func init() {
	if os.Getenv("RTM_ITEST_HELPER") == "planted" {
		plantedMain()
	}
}

// plantedMain is a fake rtmd that another user planted on $RTM_SOCKET. It
// prints "listening", then one line per connection: "silent" if the client
// sent nothing, or "hello NAME". It welcomes a hello, then reads requests
// and never answers. It exits when its stdin closes.
func plantedMain() {
	sock := os.Getenv("RTM_SOCKET")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "planted:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	say := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Println(s)
	}
	say("listening")
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
		os.Exit(0)
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "planted:", err)
			os.Exit(1)
		}
		go func() {
			defer nc.Close()
			r := wire.NewReader(nc)
			typ, p, err := r.ReadFrame()
			if err != nil {
				say("silent")
				return
			}
			h, err := wire.DecodeHello(p)
			if typ != wire.THello || err != nil {
				say(fmt.Sprintf("frame type %d: %v", typ, err))
				return
			}
			say("hello " + h.Name)
			nc.Write(wire.AppendWelcome(nil, 0, "planted", [wire.HistoryLen]byte{}))
			for {
				if _, _, err := r.ReadFrame(); err != nil {
					return
				}
			}
		}()
	}
}

// TestPlantedSocket: a socket served by another uid is refused by rtm and
// by client.Dial before they send anything, and trusted when told.
func TestPlantedSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant a socket as another uid; running as uid", os.Geteuid())
	}
	// A directory anyone may write to, as /tmp, with a copy of this test
	// binary that the planting user can run.
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "planted")
	copyFile(t, self, exe)
	sock := filepath.Join(dir, "rtm.sock")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "RTM_ITEST_HELPER=planted", "RTM_SOCKET="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: plantedUID, Gid: plantedUID}}
	planted := startHelper(t, cmd)
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		for {
			l, err := planted.out.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	// next returns the planted rtmd's next line about a connection.
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("planted rtmd ended\n%s", planted.stderr)
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("planted rtmd said nothing in 10s\n%s", planted.stderr)
		}
		return ""
	}
	if l := next(); l != "listening" {
		t.Fatalf("planted rtmd: %q, want listening\n%s", l, planted.stderr)
	}

	refusal := fmt.Sprintf("rtm: rtmd socket %s is served by uid %d (pid %d), neither root nor you (uid 0): refused", sock, plantedUID, cmd.Process.Pid)
	trust := fmt.Sprintf("pass --trust-uid %d or set RTM_TRUST_UID=%d", plantedUID, plantedUID)
	steps := []struct {
		env     string // RTM_TRUST_UID
		args    string
		errs    []string // in rtm's stderr
		planted string   // what the planted rtmd saw
	}{
		{args: "route show", errs: []string{refusal, trust}, planted: "silent"},
		{args: "route add 10.0.0.0/8 via 10.1.1.1 dev eth0", errs: []string{refusal}, planted: "silent"},
		{args: "monitor", errs: []string{refusal}, planted: "silent"},
		{args: "client", errs: []string{refusal}, planted: "silent"},
		{args: "--trust-uid 1 --trust-uid=2 status", errs: []string{refusal}, planted: "silent"},
		{env: "1,2", args: "status", errs: []string{refusal}, planted: "silent"},
		// Trusted, rtm greets it, and then times out on the request that
		// it never answers.
		{args: fmt.Sprintf("--trust-uid %d --timeout 500ms status", plantedUID),
			errs: []string{"rtm: no answer from rtmd at " + sock + " within 500ms"}, planted: "hello rtm"},
		{env: fmt.Sprint("7,", plantedUID), args: "--timeout=500ms route show",
			errs: []string{"rtm: no answer from rtmd at " + sock + " within 500ms"}, planted: "hello rtm"},
		// A monitor waits for its first table no longer than a request.
		{args: fmt.Sprintf("--trust-uid %d --timeout 500ms monitor", plantedUID),
			errs: []string{"rtm: no answer from rtmd at " + sock + " within 500ms"}, planted: "hello rtm monitor"},
	}
	for _, s := range steps {
		c := exec.Command(filepath.Join(binDir, "rtm"), append([]string{"--socket", sock}, strings.Fields(s.args)...)...)
		c.Env = append(os.Environ(), "RTM_TRUST_UID="+s.env)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		err := c.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("RTM_TRUST_UID=%s rtm %s: %v, want exit status 1\n%s", s.env, s.args, err, &stderr)
		}
		for _, want := range s.errs {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("RTM_TRUST_UID=%s rtm %s: stderr %q, want it to contain %q", s.env, s.args, &stderr, want)
			}
		}
		if got := next(); got != s.planted {
			t.Errorf("RTM_TRUST_UID=%s rtm %s: the planted rtmd saw %q, want %q", s.env, s.args, got, s.planted)
		}
	}

	// The library refuses it too, and trusts it when told.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.Dial(ctx, sock)
	var pe *client.UntrustedPeerError
	if !errors.As(err, &pe) || *pe != (client.UntrustedPeerError{Address: sock, UID: plantedUID, PID: int32(cmd.Process.Pid)}) {
		t.Errorf("client.Dial(%s) = %v, want an UntrustedPeerError of uid %d, pid %d", sock, err, plantedUID, cmd.Process.Pid)
	}
	if got := next(); got != "silent" {
		t.Errorf("client.Dial: the planted rtmd saw %q, want silent", got)
	}
	d := client.Dialer{Name: "itest", TrustUIDs: []uint32{plantedUID}}
	c, err := d.Dial(ctx, "unix", sock)
	if err != nil {
		t.Fatalf("Dialer{TrustUIDs: %d}.Dial: %v", plantedUID, err)
	}
	if c.ServerVersion != "planted" {
		t.Errorf("ServerVersion = %q, want planted", c.ServerVersion)
	}
	c.Close()
	if got := next(); got != "hello itest" {
		t.Errorf("Dialer{TrustUIDs}.Dial: the planted rtmd saw %q, want hello itest", got)
	}
}

// TestDaemonSocketDefault: rtmd run by a user with neither $RTM_SOCKET nor
// $XDG_RUNTIME_DIR has no socket path, and says how to give one rather
// than fall back to a place anyone can write to.
func TestDaemonSocketDefault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run rtmd as another uid; running as uid", os.Geteuid())
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "rtmd"), "-no-console")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: plantedUID, Gid: plantedUID}}
	out, err := cmd.CombinedOutput()
	want := "rtmd: no default rtmd socket: $RTM_SOCKET is unset, not running as root and $XDG_RUNTIME_DIR is unset; set $RTM_SOCKET or pass -socket PATH"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), want) {
		t.Errorf("rtmd as uid %d without a socket: %v, %q; want exit status 2 and %q", plantedUID, err, out, want)
	}
}

// TestStoppedRtmd: a stopped rtmd makes rtm fail within --timeout, not
// hang.
func TestStoppedRtmd(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	stopProcess(t, d.cmd.Process)
	// Cleanups run last first: this one before startRtmd's stop.
	t.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGCONT) })
	for _, args := range []string{"status", "route show", "route get 10.0.0.1", "route add 10.1.0.0/16 via 10.1.1.1 dev eth0", "monitor", "client"} {
		start := time.Now()
		_, errs, code := d.rtm("", append([]string{"--timeout", "500ms"}, strings.Fields(args)...)...)
		took := time.Since(start)
		if code != 1 || !strings.Contains(errs, " from rtmd at "+d.socket+" within 500ms (is it stopped? --timeout sets the limit)") {
			t.Errorf("rtm %s against a stopped rtmd: exit %d, stderr %q; want exit 1 and no answer within 500ms", args, code, errs)
		}
		// The bound is loose for slow machines, and far below the 10s
		// default.
		if took < 500*time.Millisecond || took > 5*time.Second {
			t.Errorf("rtm --timeout 500ms %s took %v", args, took)
		}
	}
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.table(); len(got) != 1 {
		t.Errorf("after SIGCONT, table = %q, want the one route", got)
	}
}

// TestNoRtmd: without an rtmd, every command, the streams included, says
// so and exits 1.
func TestNoRtmd(t *testing.T) {
	dir := shortDir(t)
	missing := filepath.Join(dir, "missing.sock")
	// A socket file nobody listens on, as a dead rtmd leaves.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	for _, sock := range []struct{ path, why string }{
		{missing, "connect: no such file or directory"},
		{stale, "connect: connection refused"},
	} {
		d := &daemon{t: t, socket: sock.path} // d.rtm runs rtm against the path; no rtmd
		for _, args := range []string{"status", "route show", "monitor", "client"} {
			_, errs, code := d.rtm("", strings.Fields(args)...)
			want := fmt.Sprintf("rtm: cannot reach rtmd at %s: %s (is rtmd running?)\n", sock.path, sock.why)
			if code != 1 || errs != want {
				t.Errorf("rtm %s without rtmd: exit %d, stderr %q; want exit 1, %q", args, code, errs, want)
			}
		}
	}
}

// TestMonitorFollowWaits: monitor --follow without rtmd says so once, keeps
// trying, and follows rtmd once it is there.
func TestMonitorFollowWaits(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	// rtmd appears at sock when the link to its socket is made.
	sock := filepath.Join(shortDir(t), "rtm.sock")
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "-s", sock, "monitor", "--follow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	errLines := make(chan string, 100)
	go func() {
		defer close(errLines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errLines <- sc.Text()
		}
	}()
	want := fmt.Sprintf("rtm monitor: cannot reach rtmd at %s: connect: no such file or directory (is rtmd running?); retrying until it answers", sock)
	select {
	case l := <-errLines:
		if l != want {
			t.Errorf("monitor --follow without rtmd: %q, want %q", l, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("monitor --follow said nothing about the missing rtmd in 10s")
	}
	if err := os.Symlink(d.socket, sock); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	for _, w := range []string{"add 10.0.0.0/8 via 10.1.1.1 dev eth0 proto static", "synced seq 1"} {
		if !out.Scan() {
			t.Fatalf("monitor ended: %v", out.Err())
		}
		if got := out.Text(); got != w {
			t.Errorf("monitor: %q, want %q", got, w)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for l := range errLines { // until monitor's stderr closes
		t.Errorf("monitor --follow said more than once: %q", l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("monitor --follow on SIGTERM: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
