package server

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// testServer returns a server with only a MAC table, of base name derived
// from the test's, whose segment creation fails while *failCreate is set.
func testServer(t *testing.T, capacity int) (s *Server, failCreate *bool, creates *int) {
	t.Helper()
	base := strings.NewReplacer("/", "-").Replace(fmt.Sprintf("rtm-test-%d-%s", os.Getpid(), t.Name()))
	macs, err := newMACTable(base, capacity, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		macs.close()
		if removed, foreign, _ := shm.RemoveStale(base); len(removed)+len(foreign) > 0 {
			t.Errorf("left behind: %v %v", removed, foreign)
		}
	})
	failCreate, creates = new(bool), new(int)
	create := macs.create
	macs.create = func(base string, capacity int, gen uint32) (*shm.Segment, error) {
		if *failCreate {
			return nil, errors.New("injected failure")
		}
		*creates++
		return create(base, capacity, gen)
	}
	s = &Server{log: slog.New(slog.DiscardHandler), macs: macs}
	macs.moved = s.macSegMoved
	return s, failCreate, creates
}

func testMAC(i int) mac.Addr { return mac.Addr{2, 0, 0, 0, byte(i >> 8), byte(i)} }

func testIP(i, n int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(n), byte(i >> 8), byte(i)}) }

// macLoad applies a MAC load of the MACs first..first+n-1 with value
// version v, as a request from the console.
func macLoad(s *Server, first, n, v int) Result {
	var vals []macValue
	for i := first; i < first+n; i++ {
		vals = append(vals, macValue{testMAC(i), testIP(i, v), ""})
	}
	var res Result
	s.apply(evRequest{kind: wire.KMACLoad, macs: vals}, &res)
	return res
}

// visible is what a client could see of the table: the values in the
// segment, the segment, and the sequence number.
func visible(s *Server) string {
	return fmt.Sprint(s.macs.values(), s.macs.seg.Name, s.seq, s.changes.Len())
}

// TestMACLoadAtomic checks that a MAC load that needs the segment to grow,
// when growing fails, leaves the table as it was and fails the request;
// and that once growth works the same load grows the segment once.
func TestMACLoadAtomic(t *testing.T) {
	s, failCreate, creates := testServer(t, 4)
	if res := macLoad(s, 0, 3, 1); res.Err != nil || res.Changes != 3 {
		t.Fatalf("load of 3 into 4 records: %+v", res)
	}
	s.changes.Take()
	before, entries := visible(s), maps.Clone(s.macs.entries)
	// 1 change and 5 new: the segment must grow, and cannot.
	*failCreate = true
	res := macLoad(s, 2, 6, 2)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "injected failure") || res.Changes != 0 {
		t.Errorf("load with a failing growth = %+v, want the creation's error and no changes", res)
	}
	if after := visible(s); after != before || !maps.Equal(s.macs.entries, entries) {
		t.Errorf("the failed load changed the table:\nbefore %s\nafter  %s", before, after)
	}
	*failCreate = false
	if res := macLoad(s, 2, 6, 2); res.Err != nil || res.Changes != 6 {
		t.Fatalf("load once growth works: %+v", res)
	}
	if *creates != 1 || s.macs.seg.Capacity != 8 || s.macs.seg.Gen != 2 {
		t.Errorf("grew %d times to %d records (generation %d), want once to 8 (2)", *creates, s.macs.seg.Capacity, s.macs.seg.Gen)
	}
	vals := s.macs.values()
	if len(vals) != 8 || vals[2].ip != testIP(2, 2) || vals[1].ip != testIP(1, 1) {
		t.Errorf("table after the load: %v", vals)
	}
	// A load of a thousand new keys grows once, by doubling, to 1024.
	if res := macLoad(s, 100, 1000, 3); res.Err != nil || *creates != 2 || s.macs.seg.Capacity != 1024 {
		t.Errorf("load of 1000 new keys: %+v; %d creations, %d records; want 2 and 1024", res, *creates, s.macs.seg.Capacity)
	}
}

// TestMACSegmentTruncated truncates the segment under the table: the next
// write moves the table to a new generation holding every entry and
// announces it; if no new one can be made, the write fails and changes
// nothing.
func TestMACSegmentTruncated(t *testing.T) {
	s, failCreate, _ := testServer(t, 64)
	if res := macLoad(s, 0, 10, 1); res.Err != nil {
		t.Fatal(res.Err)
	}
	s.changes.Take()
	truncate := func() {
		t.Helper()
		if err := os.Truncate(filepath.Join(shm.Dir, s.macs.seg.Name), 0); err != nil {
			t.Fatal(err)
		}
	}
	truncate()
	before, old := visible(s), s.macs.seg.Name
	*failCreate = true
	if err := s.setMAC(wire.KMACReplace, macValue{testMAC(3), testIP(3, 9), ""}); !errors.Is(err, shm.ErrTruncated) || !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("set on a truncated segment, no new one = %v; want ErrTruncated and the creation's error", err)
	}
	if _, err := s.macs.del(testMAC(4)); err == nil || len(s.macs.entries) != 10 {
		t.Errorf("del on a truncated segment, no new one = %v, %d entries; want an error and 10", err, len(s.macs.entries))
	}
	if after := visible(s); after != before {
		t.Errorf("failed writes changed the table:\nbefore %s\nafter  %s", before, after)
	}
	*failCreate = false
	if err := s.setMAC(wire.KMACReplace, macValue{testMAC(3), testIP(3, 9), ""}); err != nil {
		t.Fatalf("set on a truncated segment: %v", err)
	}
	if s.macs.seg.Name == old || s.macs.seg.Gen != 2 {
		t.Errorf("segment after the fault: %s generation %d; want a new one, 2", s.macs.seg.Name, s.macs.seg.Gen)
	}
	if _, err := os.Stat(filepath.Join(shm.Dir, old)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the truncated segment is still linked: %v", err)
	}
	vals := s.macs.values()
	if len(vals) != 10 || vals[3].ip != testIP(3, 9) || vals[9].ip != testIP(9, 1) {
		t.Errorf("table on the new segment: %v", vals)
	}
	// The stream announces the new segment.
	frames := s.changes.Take()
	if len(frames) == 0 || frames[0][4] != wire.TMACSeg {
		t.Errorf("no MACSeg frame first in the stream after the move: %x", frames)
	}
	// A header write and a check find a failed segment too.
	truncate()
	if err := s.macs.setCounters(7); err != nil || s.macs.seg.Gen != 3 {
		t.Errorf("setCounters on a truncated segment: %v, generation %d; want a move to 3", err, s.macs.seg.Gen)
	}
	shm.Unlink(s.macs.seg.Name)
	if err := s.macs.check(); err != nil || s.macs.seg.Gen != 4 {
		t.Errorf("check of an unlinked segment: %v, generation %d; want a move to 4", err, s.macs.seg.Gen)
	}
	if err := s.macs.check(); err != nil || s.macs.seg.Gen != 4 {
		t.Errorf("check of a sound segment: %v, generation %d; want no move", err, s.macs.seg.Gen)
	}
	v, err := shm.Open(s.macs.seg.Name, uint32(os.Geteuid()))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Seq() != 7 || v.Live() != 10 {
		t.Errorf("header of the new generation: seq %d, live %d; want 7, 10", v.Seq(), v.Live())
	}
}
