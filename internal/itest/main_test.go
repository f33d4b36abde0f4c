package itest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/shm"
)

var binDir string // rtmd and rtm, built by TestMain

func TestMain(m *testing.M) {
	switch os.Getenv("RTM_ITEST_HELPER") {
	case "subscriber":
		helperMain()
		return
	case "benchsub":
		benchSubscriberMain()
		return
	case "macreader":
		macReaderMain()
		return
	case "macbench":
		macBenchMain()
		return
	case "ghk84client":
		ghkClientMain()
		return
	case "pidparent":
		pidParentMain()
		return
	case "pidchild":
		pidChildMain()
		return
	case "holdconns":
		holdConnsMain()
		return
	case "reaper":
		reaperMain()
		return
	}
	dir, err := os.MkdirTemp("", "rtmbin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir}
	if raceEnabled {
		args = append(args, "-race")
		// A race-enabled program sleeps a second at exit, for goroutines
		// still running to show their races; the tests start hundreds of
		// short-lived rtm processes. A race seen before exit still makes
		// the process exit 66, which the tests check.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	args = append(args, "github.com/rtm-project/rtm/cmd/rtmd", "github.com/rtm-project/rtm/cmd/rtm")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortDir returns a temporary directory with a short path, since Unix
// socket paths are limited to 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rtm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// daemon is a running rtmd.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	socket string
	stdin  io.WriteCloser
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan error
	once   sync.Once
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startRtmd starts rtmd on a socket in a fresh directory and stops it with
// SIGTERM at the end of the test, checking that it exits 0 and leaves no
// socket file behind. rtmd runs without a message queue (-mq off), so that
// the suite passes when the uid's queue budget is nearly used up; a test
// of the queue passes "-mq", "" (the default queue) or "-mq", NAME.
func startRtmd(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startRtmdWith(t, nil, args...)
}

// startRtmdAfter is startRtmd with rtmd exec'd by bash after the shell
// commands sh ("umask 002", "ulimit -q 1000"), which change rtmd's process
// alone, unlike the test's own umask or limits.
func startRtmdAfter(t *testing.T, sh string, args ...string) *daemon {
	t.Helper()
	return startRtmdWith(t, func(cmd *exec.Cmd) {
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Args = append([]string{"bash", "-c", sh + ` && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = bash
	}, args...)
}

// startRtmdWith is startRtmd with setup called on the command before it
// starts; if setup sets its Stdin, d.stdin is nil.
func startRtmdWith(t *testing.T, setup func(*exec.Cmd), args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, socket: filepath.Join(shortDir(t), "rtm.sock"), stdout: new(lockedBuffer), stderr: new(lockedBuffer), done: make(chan error, 1)}
	if !slices.Contains(args, "-mq") {
		args = append([]string{"-mq", "off"}, args...)
	}
	if !slices.Contains(args, "-state") {
		args = append([]string{"-state", filepath.Join(t.TempDir(), "state")}, args...)
	}
	if i := slices.Index(args, "-socket"); i >= 0 && i+1 < len(args) {
		d.socket = args[i+1] // a restart on the same socket
	} else {
		args = append([]string{"-socket", d.socket}, args...)
	}
	d.cmd = exec.Command(filepath.Join(binDir, "rtmd"), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	if setup != nil {
		setup(d.cmd)
	}
	if d.cmd.Stdin == nil {
		var err error
		if d.stdin, err = d.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(d.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := client.Dial(ctx, d.socket)
		cancel()
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("rtmd did not start: %v\n%s", err, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) stop() { d.stopWith(syscall.SIGTERM) }

// stopWith stops rtmd with sig, once, and checks that it exits 0 and
// leaves nothing behind.
func (d *daemon) stopWith(sig os.Signal) { d.once.Do(func() { d.stopOnce(sig) }) }

func (d *daemon) stopOnce(sig os.Signal) {
	t := d.t
	t.Helper()
	d.cmd.Process.Signal(sig)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("rtmd exit: %v\n%s", err, d.stderr)
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("rtmd did not stop on %v\n%s", sig, d.stderr)
	}
	for _, l := range leftovers(d.socket) {
		t.Errorf("rtmd left %s behind", l)
	}
	if t.Failed() {
		t.Logf("rtmd log:\n%s", d.stderr)
	}
}

// leftovers returns, and removes, what an rtmd on socket left behind: the
// socket file, its message queue and its shared memory objects. It looks
// only at names derived from socket, so that the other rtmds on the host
// do not count.
func leftovers(socket string) []string {
	var left []string
	if _, err := os.Lstat(socket); err == nil {
		left = append(left, "its socket "+socket)
		os.Remove(socket)
	}
	base := shm.DefaultName(socket)
	if q, err := mq.Open("/"+base, os.O_RDONLY, 0, nil); err == nil {
		q.Close()
		left = append(left, "its message queue /"+base)
		mq.Unlink("/" + base)
	}
	if ents, err := os.ReadDir(shm.Dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), base) {
				left = append(left, filepath.Join(shm.Dir, e.Name()))
				os.Remove(filepath.Join(shm.Dir, e.Name()))
			}
		}
	}
	return left
}

// rtm runs the rtm command against d and returns its stdout, stderr and
// exit code.
func (d *daemon) rtm(stdin string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "rtm"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("rtm %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustRtm runs rtm and fails the test unless it exits 0.
func (d *daemon) mustRtm(args ...string) string {
	d.t.Helper()
	out, errs, code := d.rtm("", args...)
	if code != 0 {
		d.t.Fatalf("rtm %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// dial connects a library client to d.
func (d *daemon) dial() *client.Conn {
	d.t.Helper()
	c, err := client.Dial(context.Background(), d.socket)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

// table returns rtmd's table as `route show` lines and its sequence number.
func (d *daemon) table() ([]string, uint64) {
	d.t.Helper()
	c := d.dial()
	defer c.Close()
	var lines []string
	seq, err := c.Snapshot(context.Background(), func(r client.Route) { lines = append(lines, r.String()) })
	if err != nil {
		d.t.Fatal(err)
	}
	return lines, seq
}

// tables returns rtmd's routes and MAC entries as a subscriber dumps them,
// and the sequence number.
func (d *daemon) tables() ([]string, uint64) {
	d.t.Helper()
	lines, seq := d.table()
	c := d.dial()
	defer c.Close()
	macs, seq2, err := c.MACSnapshot(context.Background())
	if err != nil || seq2 != seq {
		d.t.Fatalf("MAC snapshot: %v (seq %d, routes at %d)", err, seq2, seq)
	}
	for _, e := range macs {
		lines = append(lines, strings.TrimSpace(fmt.Sprint("mac ", e.MAC, " ", e.IP, " ", e.Dev)))
	}
	return lines, seq
}

// subscriber is a helper process that keeps a client.Mirror.
type subscriber struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *lockedBuffer
}

func startSubscriber(t *testing.T, socket string) *subscriber {
	t.Helper()
	return startHelper(t, execHelper("subscriber", socket))
}

// execHelper returns a command that runs this test binary as a helper.
func execHelper(kind, socket string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RTM_ITEST_HELPER="+kind, "RTM_SOCKET="+socket)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// startHelper starts a helper process and stops it at the end of the test.
func startHelper(t *testing.T, cmd *exec.Cmd) *subscriber {
	t.Helper()
	s := &subscriber{cmd: cmd, stderr: new(lockedBuffer)}
	cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.stdin.Close()
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	})
	return s
}

// dump asks the subscriber for its tables (routes, then "mac MAC IP"
// lines) once it has reached seq.
func (s *subscriber) dump(t *testing.T, seq uint64) (lines []string, resyncs int) {
	lines, resyncs, _ = s.dumpAll(t, seq)
	return lines, resyncs
}

func (s *subscriber) dumpAll(t *testing.T, seq uint64) (lines []string, resyncs, signals int) {
	t.Helper()
	fmt.Fprintf(s.stdin, "wait %d\n", seq)
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("subscriber: %v\n%s", err, s.stderr)
		}
		line = strings.TrimSuffix(line, "\n")
		if n, _ := fmt.Sscanf(line, "end resyncs=%d signals=%d", &resyncs, &signals); n == 2 {
			return lines, resyncs, signals
		}
		lines = append(lines, line)
	}
}

// helperMain is the subscriber process: a Mirror, and on "wait SEQ" from
// stdin, its table once it reaches SEQ.
func helperMain() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &client.Mirror{Network: os.Getenv("RTM_NETWORK"), Address: os.Getenv("RTM_SOCKET"), Dialer: client.Dialer{Name: "itest subscriber"}}
	m.Register = os.Getenv("RTM_REGISTER") != ""
	go m.Run(ctx)
	sc := bufio.NewScanner(os.Stdin)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "wait %d", &seq); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad command", sc.Text())
			os.Exit(2)
		}
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		if err := m.WaitSeq(wctx, seq); err != nil {
			got, _ := m.Seq()
			fmt.Fprintf(os.Stderr, "helper: waiting for seq %d (at %d): %v\n", seq, got, err)
			os.Exit(1)
		}
		wcancel()
		for _, r := range m.Routes() {
			fmt.Fprintln(w, r)
		}
		for _, e := range m.MACEntries() {
			fmt.Fprintln(w, strings.TrimSpace(fmt.Sprint("mac ", e.MAC, " ", e.IP, " ", e.Dev)))
		}
		fmt.Fprintf(w, "end resyncs=%d signals=%d\n", m.Resyncs(), m.FlushSignals())
		w.Flush()
	}
}

func parseRoute(s string) (client.Route, error) { return client.ParseRoute(s) }

// stopProcess sends p SIGSTOP and waits until every thread of it has
// stopped: kill returns once the signal is queued, and a thread already
// running may serve a request before it stops.
func stopProcess(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("/proc/%d/task", p.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			if err != nil {
				continue // exited
			}
			// The state follows the command name in parentheses.
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				running++
			}
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: %d threads not stopped 10 s after SIGSTOP", p.Pid, running)
		}
	}
}
