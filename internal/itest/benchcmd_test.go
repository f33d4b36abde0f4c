package itest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtm-project/rtm/internal/bench"
	"github.com/rtm-project/rtm/internal/shm"
)

// TestBenchTiny runs every scenario of `rtm bench` on a tiny table: each
// must produce its figures, and the bench must leave no process, socket,
// queue, shared memory object or network namespace behind.
func TestBenchTiny(t *testing.T) {
	shmBefore := listDir(t, shm.Dir)
	nsBefore := netns()
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "bench", "-j", "-routes", "500", "-clients", "2", "-runs", "1", "-duration", "300ms")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rtm bench: %v\n%s", err, out)
	}
	var rep bench.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("rtm bench -j: %v\n%s", err, out)
	}
	want := map[string]bool{}
	for _, m := range []string{"load/routes_per_s", "load/all_subscribers_done_s", "load/v6_routes_per_s", "snapshot/snapshot_s",
		"churn/changes_per_s", "churn/max_backlog", "latency/p50_us", "latency/p99_us", "latency/p999_us",
		"mac/lookup_ns", "mac/adds_per_s", "memory/rtmd_bytes_per_route", "memory/subscriber_bytes_per_route"} {
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
	// Nothing left behind.
	time.Sleep(100 * time.Millisecond)
	if after := listDir(t, shm.Dir); len(after) > len(shmBefore) {
		t.Errorf("shared memory objects left: %v (before %v)", after, shmBefore)
	}
	if after := netns(); after != nsBefore {
		t.Errorf("network namespaces left: %q (before %q)", after, nsBefore)
	}
	if out, _ := exec.Command("pgrep", "-f", "rtm bench-|rtmd -socket /tmp/rtmbench").Output(); len(out) > 0 {
		t.Errorf("processes left: %s", out)
	}
	if m, _ := filepath.Glob(filepath.Join(os.TempDir(), "rtmbench*")); len(m) > 0 {
		t.Errorf("bench directories left: %v", m)
	}
}

// TestBenchInterrupted interrupts `rtm bench` midway: it must still clean
// up everything it started.
func TestBenchInterrupted(t *testing.T) {
	shmBefore := listDir(t, shm.Dir)
	cmd := exec.Command(filepath.Join(binDir, "rtm"), "bench", "-routes", "20000", "-clients", "4", "-runs", "3", "load", "churn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("rtm bench did not stop on SIGINT")
	}
	time.Sleep(200 * time.Millisecond)
	if after := listDir(t, shm.Dir); len(after) > len(shmBefore) {
		t.Errorf("shared memory objects left: %v", after)
	}
	if out, _ := exec.Command("pgrep", "-f", "rtm bench-|rtmd -socket /tmp/rtmbench").Output(); len(out) > 0 {
		t.Errorf("processes left: %s", out)
	}
	if m, _ := filepath.Glob(filepath.Join(os.TempDir(), "rtmbench*")); len(m) > 0 {
		t.Errorf("bench directories left: %v", m)
	}
}

func listDir(t *testing.T, dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func netns() string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	return strings.TrimSpace(string(out))
}
