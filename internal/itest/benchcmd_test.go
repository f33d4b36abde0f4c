package itest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/bench"
)

// TestBenchTiny runs every scenario of `rtm bench` on a tiny table: each
// must produce its figures, and the bench must leave no process, socket,
// queue, shared memory object or network namespace behind.
func TestBenchTiny(t *testing.T) {
	b := startBench(t, "-j", "-routes", "500", "-clients", "2", "-runs", "1", "-duration", "300ms")
	if err := b.wait(2 * time.Minute); err != nil {
		t.Fatalf("rtm bench: %v\n%s", err, b.stderr)
	}
	b.checkClean()
	var rep bench.Report
	if err := json.Unmarshal(b.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("rtm bench -j: %v\n%s", err, b.stdout.Bytes())
	}
	want := map[string]bool{}
	for _, m := range []string{"load/routes_per_s", "load/all_subscribers_done_s", "load/v6_routes_per_s", "snapshot/snapshot_s",
		"churn/changes_per_s", "churn/max_backlog", "latency/p50_us", "latency/p99_us", "latency/p999_us",
		"mac/lookup_ns", "mac/adds_per_s", "memory/rtmd_bytes_per_route", "memory/subscriber_bytes_per_route",
		"restart/serving_again_s", "restart/subscribers_resumed_s", "restart/subscribers_resynced_s"} {
		want[m] = true
	}
	for _, r := range rep.Results {
		key := r.Scenario + "/" + r.Metric
		if !(r.Median > 0 || r.Metric == "max_backlog" && r.Median >= 0) || r.Min > r.Median || r.Max < r.Median {
			t.Errorf("%s: median %v min %v max %v", key, r.Median, r.Min, r.Max)
		}
		if len(r.References) == 0 {
			t.Errorf("%s: no references", key)
		}
		for _, ref := range r.References {
			if ref.Skipped == "" && (ref.Median <= 0 || ref.Ratio <= 0) {
				t.Errorf("%s: reference %s has no figure and no reason", key, ref.Name)
			}
		}
		delete(want, key)
	}
	for m := range want {
		t.Errorf("no figure for %s", m)
	}
	if rep.Machine.Cores == 0 || rep.Machine.Go == "" {
		t.Errorf("machine %+v", rep.Machine)
	}
}

// TestBenchInterrupted interrupts `rtm bench` while its rtmd and a
// subscriber process run: it must still clean up everything it started.
func TestBenchInterrupted(t *testing.T) {
	b := startBench(t, "-routes", "20000", "-clients", "4", "-runs", "3", "load", "churn")
	if !b.waitCreated(func(l string) bool { return strings.HasPrefix(l, "process ") && strings.HasSuffix(l, " bench-sub") }, time.Minute) {
		t.Fatalf("rtm bench started no subscriber; it made %q\n%s", b.createdLines(), b.stderr)
	}
	b.cmd.Process.Signal(os.Interrupt)
	b.wait(30 * time.Second) // its exit status is not the point
	b.checkClean()
}

// benchRun is an `rtm bench` with its own TMPDIR, run under the reaper
// helper (see reaperMain), with -created on a pipe.
type benchRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	tmp     string // the bench's TMPDIR
	stdout  bytes.Buffer
	stderr  *lockedBuffer
	done    chan error
	exited  bool // done has been received from
	checked bool // checkClean has run

	mu      sync.Mutex
	created []string      // the lines of -created so far
	more    chan struct{} // a line came, or the pipe closed
	eof     bool
}

func startBench(t *testing.T, args ...string) *benchRun {
	t.Helper()
	b := &benchRun{t: t, tmp: shortDir(t), stderr: new(lockedBuffer), done: make(chan error, 1), more: make(chan struct{}, 1)}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-test.run=^$", "--", filepath.Join(binDir, "rtm"), "bench", "-created", "/dev/fd/3"}, args...)
	b.cmd = exec.Command(os.Args[0], args...)
	b.cmd.Env = append(os.Environ(), "RTM_ITEST_HELPER=reaper", "TMPDIR="+b.tmp)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, b.stderr
	b.cmd.ExtraFiles = []*os.File{w}
	err = b.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		if !b.exited {
			// The test failed early: stop the bench as a user would,
			// so that it cleans up, and then look.
			b.cmd.Process.Signal(os.Interrupt)
			select {
			case <-b.done:
			case <-time.After(30 * time.Second):
				b.cmd.Process.Kill()
				<-b.done
			}
			b.exited = true
		}
		if !b.checked {
			b.checkClean()
		}
		r.Close()
	})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			b.mu.Lock()
			b.created = append(b.created, sc.Text())
			b.mu.Unlock()
			b.notify()
		}
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
		b.notify()
	}()
	return b
}

func (b *benchRun) notify() {
	select {
	case b.more <- struct{}{}:
	default:
	}
}

func (b *benchRun) createdLines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.created)
}

// waitCreated waits until the bench reports a thing it made for which
// match is true, and reports whether one came in time.
func (b *benchRun) waitCreated(match func(line string) bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		found, eof := slices.ContainsFunc(b.created, match), b.eof
		b.mu.Unlock()
		if found {
			return true
		}
		if eof {
			return false
		}
		select {
		case <-b.more:
		case <-deadline:
			return false
		}
	}
}

// wait waits for the bench to exit.
func (b *benchRun) wait(timeout time.Duration) error {
	b.t.Helper()
	select {
	case err := <-b.done:
		b.exited = true
		return err
	case <-time.After(timeout):
		b.cmd.Process.Signal(os.Interrupt)
		<-b.done
		b.exited = true
		b.t.Fatalf("rtm bench did not finish in %v\n%s", timeout, b.stderr)
		return nil
	}
}

// checkClean checks, once the bench has exited, that it left nothing of
// what it reported making: no process (the reaper saw none), directory,
// rtmd socket, queue or shared memory object, or network namespace; and
// nothing in its TMPDIR.
func (b *benchRun) checkClean() {
	t := b.t
	t.Helper()
	b.checked = true
	for _, l := range strings.Split(b.stderr.String(), "\n") {
		if strings.HasPrefix(l, "reaper: ") {
			t.Errorf("rtm bench %s", strings.TrimPrefix(l, "reaper: "))
		}
	}
	lines := b.createdLines()
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "rtmd ") }) {
		t.Errorf("rtm bench reported no rtmd in -created: %q", lines)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case f[0] == "dir" && len(f) == 2:
			if _, err := os.Lstat(f[1]); err == nil {
				t.Errorf("rtm bench left its directory %s", f[1])
			}
		case f[0] == "rtmd" && len(f) == 3:
			for _, left := range leftovers(f[2]) {
				t.Errorf("rtm bench's rtmd (pid %s) left %s behind", f[1], left)
			}
		case f[0] == "netns" && len(f) == 2:
			if _, err := os.Lstat(filepath.Join("/run/netns", f[1])); err == nil {
				t.Errorf("rtm bench left network namespace %s", f[1])
				exec.Command("ip", "netns", "del", f[1]).Run()
			}
		case f[0] == "process" && len(f) == 3:
			// The reaper reports any process left.
		default:
			t.Errorf("rtm bench -created: bad line %q", l)
		}
	}
	if ents, _ := os.ReadDir(b.tmp); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("rtm bench left %v in its TMPDIR", names)
	}
}

// reaperMain runs the command after "--" in its arguments as a child
// subreaper (PR_SET_CHILD_SUBREAPER), so that any process the command
// leaves running becomes its child rather than init's. It passes on its
// stdin, stdout, stderr and fd 3, and SIGINT and SIGTERM. After the command
// exits it reports each process left as "reaper: left pid N running: ARGS"
// on stderr, kills and reaps it, and exits with the command's code.
func reaperMain() {
	args := os.Args[slices.Index(os.Args, "--")+1:]
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "reaper: prctl(PR_SET_CHILD_SUBREAPER):", err)
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "fd3")}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "reaper:", err)
		os.Exit(2)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	// Orphans are reparented before the command's exit is reported, so
	// every process it left is a child now.
	for _, pid := range ownChildren() {
		argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(os.Stderr, "reaper: left pid %d running: %s\n", pid, bytes.ReplaceAll(bytes.TrimRight(argv, "\x00"), []byte{0}, []byte{' '}))
		unix.Kill(pid, unix.SIGKILL)
	}
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err != nil && err != unix.EINTR {
			break // ECHILD: none left
		}
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// ownChildren returns the pids of this process's children, from
// /proc/self/task/*/children.
func ownChildren() []int {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []int
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(data)) {
			var pid int
			if _, err := fmt.Sscan(s, &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
