package state_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rtm-project/rtm/internal/state"
)

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "state")
	d, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("made the directory %v, %v; want mode 0700", fi.Mode(), err)
	}
	if d.History == [16]byte{} {
		t.Error("no history id")
	}
	// A second rtmd is refused, and told who holds it.
	_, err = state.Open(path)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another rtmd (pid %d)", os.Getpid())) {
		t.Errorf("second Open: %v", err)
	}
	history := d.History
	d.Close()
	d, err = state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.History != history {
		t.Error("the history id changed across Open")
	}
	d.Close()
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	badHistory := filepath.Join(dir, "bad")
	os.Mkdir(badHistory, 0o700)
	os.WriteFile(filepath.Join(badHistory, "history"), []byte("xyz\n"), 0o600)
	noHistory := filepath.Join(dir, "nohistory")
	os.Mkdir(noHistory, 0o700)
	os.WriteFile(filepath.Join(noHistory, "journal-0000000000000000"), nil, 0o600)
	fifo := filepath.Join(dir, "fifo")
	os.Mkdir(fifo, 0o700)
	syscall.Mkfifo(filepath.Join(fifo, "journal-0000000000000000"), 0o600)
	link := filepath.Join(dir, "link")
	os.Mkdir(link, 0o700)
	os.Symlink("/etc/passwd", filepath.Join(link, "history"))
	for path, want := range map[string]string{
		fifo:       "journal-0000000000000000 is a named pipe, not a regular file",
		link:       "history is a symbolic link, not a regular file",
		open:       "mode 0777 lets others write it",
		file:       "not a directory",
		badHistory: `history file holds "xyz", want 32 hex digits`,
		noHistory:  "state files but no history file",
	} {
		if _, err := state.Open(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want %q", filepath.Base(path), err, want)
		}
	}
}

func TestFiles(t *testing.T) {
	path := t.TempDir()
	d, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, 300, 7} {
		os.WriteFile(d.JournalPath(seq), nil, 0o600)
	}
	os.WriteFile(d.SnapshotPath(300), nil, 0o600)
	os.WriteFile(d.SnapshotPath(301)+".tmp", nil, 0o600)        // a crash's leftover
	os.WriteFile(filepath.Join(path, "journal-zz"), nil, 0o600) // not ours
	d.Close()
	if d, err = state.Open(path); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !slices.Equal(d.Removed, []string{"snapshot-000000000000012d.tmp"}) {
		t.Errorf("removed %v", d.Removed)
	}
	snaps, journals, err := d.Files()
	if err != nil || !slices.Equal(snaps, []uint64{300}) || !slices.Equal(journals, []uint64{0, 7, 300}) {
		t.Errorf("Files = %v %v %v", snaps, journals, err)
	}
}

// TestRuns: each start records a new run and the end of the one before
// it; a new history forgets the runs; the file keeps state.MaxRuns.
func TestRuns(t *testing.T) {
	d, err := state.Open(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first, before, err := d.NewRun(0)
	if err != nil || len(before) != 0 {
		t.Fatalf("first run: %v runs before, %v", before, err)
	}
	second, before, err := d.NewRun(42)
	if err != nil || len(before) != 1 || before[0] != (state.Run{first, 42}) || second == first {
		t.Fatalf("second run: runs before %v, %v; want the first ending at 42", before, err)
	}
	for i := range state.MaxRuns + 3 {
		if _, before, err = d.NewRun(uint64(100 + i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(before) != state.MaxRuns || before[0].End != 100+state.MaxRuns+2 {
		t.Errorf("after %d runs: %d remembered, the newest ending at %d", state.MaxRuns+5, len(before), before[0].End)
	}
	if err := d.SetHistory([16]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, before, err = d.NewRun(7); err != nil || len(before) != 0 {
		t.Errorf("after a new history: runs before %v, %v; want none", before, err)
	}
	if err := os.WriteFile(filepath.Join(d.Path, "runs"), []byte("00000000000000000000000000000000\nzz 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.NewRun(7); err == nil || !strings.Contains(err.Error(), "runs file, line 2") {
		t.Errorf("a damaged runs file: %v; want an error naming line 2", err)
	}
}
