package itest_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/wire"
)

func registeredSubscriber(t *testing.T, socket string) *subscriber {
	t.Helper()
	return startHelper(t, execHelper("subscriber", socket, "RTM_REGISTER=1"))
}

// waitRegistered waits until rtmd lists n registered clients.
func waitRegistered(t *testing.T, d *daemon, n int) []client.ClientInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list []client.ClientInfo
		if err := json.Unmarshal([]byte(d.mustRtm("clients", "-j")), &list); err != nil {
			t.Fatal(err)
		}
		reg := 0
		for _, c := range list {
			if c.Registered {
				reg++
			}
		}
		if reg == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients registered, want %d: %+v", reg, n, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlush: five registered clients, a flush from `rtm flush`: every
// client's tables are empty of what was there, each got one SIGUSR1, and
// the adds made right after the flush are present everywhere.
func TestFlush(t *testing.T) {
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	d.mustRtm("mac", "add", "02:00:00:00:00:01", "10.0.0.1")
	var subs []*subscriber
	for range 5 {
		subs = append(subs, registeredSubscriber(t, d.socket))
	}
	waitRegistered(t, d, 5)
	d.mustRtm("flush", "all")
	d.mustRtm("route", "add", "10.9.0.0/16", "via", "10.1.1.1", "dev", "eth0")
	d.mustRtm("mac", "add", "02:00:00:00:00:02", "10.0.0.2")
	want, seq := d.tables()
	wantLines := []string{"10.9.0.0/16 via 10.1.1.1 dev eth0 proto static", "mac 02:00:00:00:00:02 10.0.0.2"}
	if !slices.Equal(want, wantLines) {
		t.Fatalf("rtmd after flush = %q, want %q", want, wantLines)
	}
	for i, s := range subs {
		var got []string
		var signals int
		// The signal may trail the stream by a moment.
		for deadline := time.Now().Add(10 * time.Second); ; {
			got, _, signals = s.dumpAll(t, seq)
			if signals > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !slices.Equal(got, want) {
			t.Errorf("client %d: %q, want %q", i, got, want)
		}
		if signals != 1 {
			t.Errorf("client %d got %d SIGUSR1, want 1", i, signals)
		}
	}
	if n := strings.Count(d.stderr.String(), "signalling client"); n != 0 {
		t.Errorf("rtmd failed to signal %d clients:\n%s", n, d.stderr)
	}
}

// TestRegisterOtherPid: a client that registers a pid other than its own
// is refused.
func TestRegisterOtherPid(t *testing.T) {
	d := startRtmd(t)
	nc, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, Name: "liar"}))
	pid := uint32(os.Getppid())
	nc.Write(wire.AppendRequest(nil, 9, wire.KRegister, []byte{byte(pid), byte(pid >> 8), byte(pid >> 16), byte(pid >> 24)}))
	r := wire.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, p, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if typ == wire.TReply {
			if p[4] != wire.StatusError || !strings.Contains(string(p), "is not yours") {
				t.Errorf("register with pid %d: reply %q, want a refusal", pid, p)
			}
			break
		}
	}
	if list := waitRegistered(t, d, 0); len(list) == 0 {
		t.Error("the client is not listed")
	}
}

// TestKilledClient: a registered client killed with SIGKILL is dropped, is
// not signalled by the next flush, and rtmd keeps serving.
func TestKilledClient(t *testing.T) {
	d := startRtmd(t)
	live := registeredSubscriber(t, d.socket)
	dead := registeredSubscriber(t, d.socket)
	waitRegistered(t, d, 2)
	deadPid := dead.cmd.Process.Pid
	dead.cmd.Process.Kill()
	dead.cmd.Wait()
	list := waitRegistered(t, d, 1)
	for _, c := range list {
		if int(c.PID) == deadPid {
			t.Errorf("killed client %d still listed", deadPid)
		}
	}
	d.mustRtm("flush", "all")
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	want, seq := d.tables()
	if got, _, _ := live.dumpAll(t, seq); !slices.Equal(got, want) {
		t.Errorf("live client after the flush: %q, want %q", got, want)
	}
	log := d.stderr.String()
	if !strings.Contains(log, fmt.Sprintf("registered client gone without goodbye\" client=\"#")) || !strings.Contains(log, fmt.Sprintf("pid %d", deadPid)) {
		t.Errorf("no log line for the killed client:\n%s", log)
	}
	if strings.Contains(log, "signalling client") {
		t.Errorf("rtmd tried to signal a client that is gone:\n%s", log)
	}
}

// TestUnprivilegedMutation: a client of another uid may subscribe but not
// change the tables.
func TestUnprivilegedMutation(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid; running as uid", os.Getuid())
	}
	d := startRtmd(t)
	d.mustRtm("route", "add", "10.0.0.0/8", "via", "10.1.1.1", "dev", "eth0")
	// Let uid 65534 reach the socket and the rtm binary.
	for _, p := range []string{filepath.Dir(d.socket), binDir} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(d.socket, 0o666)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir, "rtm"), append([]string{"-s", d.socket}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "GORACE=" + os.Getenv("GORACE")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("route", "add", "10.1.0.0/16", "via", "10.1.1.1", "dev", "eth0")
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("route add as uid 65534: %v, %s; want permission denied", err, out)
	}
	out, err = run("flush", "all")
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("flush as uid 65534: %v, %s; want permission denied", err, out)
	}
	out, err = run("route", "show")
	if err != nil || out != "10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n" {
		t.Errorf("route show as uid 65534: %v, %q", err, out)
	}
	if got, _ := d.table(); len(got) != 1 {
		t.Errorf("table changed: %q", got)
	}
}
