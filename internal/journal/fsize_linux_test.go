package journal_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rtm-project/rtm/internal/journal"
)

// TestCommitFileSizeLimit fails a commit with the kernel's own error: a
// child process (this test binary again) lowers RLIMIT_FSIZE just past the
// committed end, so its commit is written in part and then refused with
// EFBIG, as a full disk refuses with ENOSPC. The child checks the file was
// cut back, raises the limit ("space returns"), commits again; the parent
// then reads both commits, the failed one's two records included.
func TestCommitFileSizeLimit(t *testing.T) {
	if path := os.Getenv("RTM_JOURNAL_FSIZE_CHILD"); path != "" {
		if err := fsizeChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "journal")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCommitFileSizeLimit$")
	cmd.Env = append(os.Environ(), "RTM_JOURNAL_FSIZE_CHILD="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") || !strings.Contains(string(out), "cut back to") {
		t.Fatalf("child did not report the failed commit:\n%s", out)
	}
	t.Logf("child:\n%s", out)
	got, _, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	ps := fsizePayloads()
	sameCommits(t, got, [][][]byte{ps[:3], ps[3:]})
}

func fsizePayloads() [][]byte {
	ps := payloads(5)
	ps[3] = make([]byte, 1000)
	ps[4] = make([]byte, 1000)
	ps[3][0], ps[4][0] = 3, 4
	return ps
}

// cutSpy records the file's size before each cut.
type cutSpy struct {
	journal.File
	path   string
	before int64
}

func (f *cutSpy) Truncate(n int64) error {
	if st, err := os.Stat(f.path); err == nil {
		f.before = st.Size()
	}
	return f.File.Truncate(n)
}

func fsizeChild(path string) error {
	ps := fsizePayloads()
	w, err := journal.Create(path, testHeader)
	if err != nil {
		return err
	}
	for _, p := range ps[:3] {
		w.Append(p)
	}
	if err := w.Commit(); err != nil {
		return err
	}
	committed := w.Size()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	small := lim
	small.Cur = uint64(committed) + 100
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		return err
	}
	spy := &cutSpy{path: path}
	spy.File = w.SetFile(spy)
	for _, p := range ps[3:] {
		w.Append(p)
	}
	err = w.Commit()
	fmt.Println("commit under the limit:", err)
	if !errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("commit past RLIMIT_FSIZE: %v, want EFBIG", err)
	}
	if spy.before != committed+100 {
		return fmt.Errorf("before the cut the file was %d bytes, want %d: the write filled the 100 bytes below the limit", spy.before, committed+100)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() != committed || w.Size() != committed {
		return fmt.Errorf("after the failed commit the file is %d bytes, Size() %d, want both %d", st.Size(), w.Size(), committed)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("commit once the limit is raised: %v", err)
	}
	return w.Close()
}
