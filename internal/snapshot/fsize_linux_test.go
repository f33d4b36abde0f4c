package snapshot_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rtm-project/rtm/internal/snapshot"
)

// TestWriteFileSizeLimit fails a Write midway with the kernel's own error:
// a child process (this test binary again) lowers RLIMIT_FSIZE to 100 KiB
// and writes a snapshot of several hundred KiB, which the kernel writes in
// part and then refuses with EFBIG. Neither the snapshot nor its temporary
// file may be left, and the one already in place stays readable.
func TestWriteFileSizeLimit(t *testing.T) {
	if dir := os.Getenv("RTM_SNAPSHOT_FSIZE_CHILD"); dir != "" {
		if err := fsizeChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	path, _ := write(t, dir, specialRoutes(t), testMACs(3))
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileSizeLimit$")
	cmd.Env = append(os.Environ(), "RTM_SNAPSHOT_FSIZE_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") {
		t.Fatalf("child did not report the failed write:\n%s", out)
	}
	t.Logf("child:\n%s", out)
	if names := dirNames(t, dir); !slices.Equal(names, []string{"snapshot"}) {
		t.Fatalf("directory holds %q after the failed Write, want the old snapshot only", names)
	}
	_, got, err := readAll(t, path)
	if err != nil {
		t.Fatal(err)
	}
	sameContents(t, got, specialRoutes(t), testMACs(3))
}

func fsizeChild(dir string) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	small := lim
	small.Cur = 100 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		return err
	}
	_, err := snapshot.Write(filepath.Join(dir, "snapshot"), testHeader, slices.Values(manyRoutes(50_000, 1)), testMACs(1000))
	fmt.Println("write under the limit:", err)
	if !errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("Write past RLIMIT_FSIZE: %v, want EFBIG", err)
	}
	return nil
}
