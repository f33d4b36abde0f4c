package itest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/mq"
	"github.com/rtm-project/rtm/internal/shm"
)

func (d *daemon) status() client.Status {
	d.t.Helper()
	var st client.Status
	if err := json.Unmarshal([]byte(d.mustRtm("status", "-j")), &st); err != nil {
		d.t.Fatal(err)
	}
	return st
}

// waitSeq waits until rtmd has applied seq changes.
func (d *daemon) waitSeq(seq uint64) client.Status {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := d.status()
		if st.Seq >= seq {
			return st
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("rtmd at seq %d, want %d:\n%s", st.Seq, seq, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func queueName(socket string) string { return "/" + shm.DefaultName(socket) }

// TestQueueFromC compiles a C program that mq_sends commands, as any local
// program may, and checks that rtmd applies them; and that a message's bad
// line is rejected alone.
func TestQueueFromC(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found; the C client test needs it")
	}
	bin := filepath.Join(t.TempDir(), "mqsend")
	if out, err := exec.Command(gcc, "-O", "-o", bin, "testdata/mqsend.c", "-lrt").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	d := startRtmd(t, "-mq", "")
	out, err := exec.Command(bin, queueName(d.socket),
		"route add 10.0.0.0/8 via 10.1.1.1 dev eth0",
		"route add 10.1.0.0/16 via 10.1.1.1 dev eth0\nroute add 10.2.0.0/33 via 10.1.1.1 dev eth0\nmac add 02:00:00:00:00:01 10.0.0.1",
		"bogus",
	).CombinedOutput()
	if err != nil {
		t.Fatalf("mqsend: %v\n%s", err, out)
	}
	st := d.waitSeq(3)
	if q := st.Inputs["queue"]; q.Accepted != 3 || q.Rejected != 2 {
		t.Errorf("queue counters %+v, want 3 accepted, 2 rejected", q)
	}
	if got := d.mustRtm("route", "show"); got != "10.0.0.0/8 via 10.1.1.1 dev eth0 proto static\n10.1.0.0/16 via 10.1.1.1 dev eth0 proto static\n" {
		t.Errorf("routes after the C client: %q", got)
	}
	for _, w := range []string{`invalid dst \"10.2.0.0/33\"`, `unknown command \"bogus\"`} {
		if !strings.Contains(d.stderr.String(), w) {
			t.Errorf("rtmd's log lacks %s:\n%s", w, d.stderr)
		}
	}
	if _, err := mq.Open(queueName(d.socket), os.O_WRONLY, 0, nil); err != nil {
		t.Errorf("queue not there while rtmd runs: %v", err)
	}
	d.stop()
	if _, err := mq.Open(queueName(d.socket), os.O_WRONLY, 0, nil); err == nil {
		t.Error("rtmd left its queue behind")
	}
}

// TestMultiSource sends commands concurrently over the Unix socket, through
// the queue and on rtmd's console, while subscribers listen over the socket
// and over TCP: every command is applied exactly once, every subscriber
// ends equal to rtmd, and the sequence numbers a TCP monitor sees rise by
// one without a gap.
func TestMultiSource(t *testing.T) {
	d := startRtmd(t, "-mq", "", "-console", "-listen", "127.0.0.1:0")
	tcp := d.status().TCP
	if tcp == "" {
		t.Fatal("no TCP listener in status")
	}
	unixSub := startSubscriber(t, d.socket)
	tcpSub := startHelper(t, execHelper("subscriber", tcp, "RTM_NETWORK=tcp"))
	mon := exec.Command(filepath.Join(binDir, "rtm"), "--connect", tcp, "monitor", "-j")
	monOut, _ := mon.StdoutPipe()
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { mon.Process.Kill(); mon.Wait() }()
	var seqs []uint64
	monSynced, monDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(monDone)
		sc := bufio.NewScanner(monOut)
		for sc.Scan() {
			var ev struct {
				Seq uint64 `json:"seq"`
				Op  string `json:"op"`
			}
			json.Unmarshal(sc.Bytes(), &ev)
			if ev.Op == "synced" {
				close(monSynced)
			} else {
				seqs = append(seqs, ev.Seq)
			}
			if ev.Seq == 900 {
				return
			}
		}
	}()
	// The monitor syncs to the empty table before the first change, so
	// that every change reaches it as a change.
	select {
	case <-monSynced:
	case <-monDone:
		t.Fatal("the TCP monitor ended before it synced")
	case <-time.After(10 * time.Second):
		t.Fatal("the TCP monitor did not sync")
	}

	const n = 300
	line := func(src, i int) string {
		return fmt.Sprintf("route add 10.%d.%d.%d/32 via 192.0.2.1 dev src%d", src, i>>8, i&255, src)
	}
	var wg sync.WaitGroup
	wg.Go(func() { // the socket
		c := d.dial()
		for i := range n {
			r, _ := parseRoute(line(1, i)[len("route add "):])
			if _, err := c.Add(context.Background(), r); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() { // the queue, ten commands a message
		q, err := mq.Open(queueName(d.socket), os.O_WRONLY, 0, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer q.Close()
		for i := 0; i < n; i += 10 {
			var msg []string
			for j := i; j < i+10; j++ {
				msg = append(msg, line(2, j))
			}
			q.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := q.Send([]byte(strings.Join(msg, "\n")), 0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() { // the console
		for i := range n {
			fmt.Fprintln(d.stdin, line(3, i))
		}
	})
	wg.Wait()
	st := d.waitSeq(3 * n)
	if st.Seq != 3*n {
		t.Errorf("rtmd at seq %d, want %d", st.Seq, 3*n)
	}
	for in, c := range st.Inputs {
		if c.Rejected != 0 {
			t.Errorf("input %s rejected %d", in, c.Rejected)
		}
	}
	want, seq := d.table()
	if len(want) != 3*n {
		t.Errorf("rtmd has %d routes, want %d", len(want), 3*n)
	}
	for name, s := range map[string]*subscriber{"unix": unixSub, "tcp": tcpSub} {
		got, resyncs := s.dump(t, seq)
		if !slices.Equal(got, want) || resyncs != 0 {
			t.Errorf("%s subscriber: %d routes, %d resyncs; want rtmd's %d, none", name, len(got), resyncs, len(want))
		}
	}
	select {
	case <-monDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the TCP monitor did not see seq 900")
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("monitor sequence %d follows %d", seqs[i], seqs[i-1])
		}
	}
	// A mutation over TCP is refused.
	c, err := (&client.Dialer{}).Dial(context.Background(), "tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, _ := parseRoute("10.9.0.0/16 via 192.0.2.1 dev x")
	if _, err := c.Add(context.Background(), r); !errors.Is(err, client.ErrPermission) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("add over TCP = %v, want permission denied", err)
	}
}
