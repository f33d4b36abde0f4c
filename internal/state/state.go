// Package state is rtmd's state directory (docs/state.md): the lock that
// keeps a second rtmd out, the history id, and the names of the snapshot
// and journal files in it.
//
// A directory holds
//
//	lock                  the pid of the rtmd that uses it (which flock(2)s the directory)
//	history               the history id, 32 hex digits and a newline
//	runs                  the id of each start of rtmd on the directory (docs/state.md)
//	snapshot-SEQ          the state at sequence number SEQ (16 hex digits)
//	journal-SEQ           the changes after SEQ, up to the next journal's SEQ
//
// and, after a crash, leftovers of files being written (history.tmp,
// snapshot-SEQ.tmp, journal-SEQ.new), which Open removes. Other files are
// left alone.
package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open, locked state directory.
type Dir struct {
	Path    string
	History [16]byte
	// Removed lists the leftovers of a crash that Open removed.
	Removed []string
	lock    *os.File // the directory, flocked
}

// DefaultPath is where rtmd keeps its state when -state is not given:
// /var/lib/rtm as root, else $XDG_STATE_HOME/rtm, else
// ~/.local/state/rtm.
func DefaultPath() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/rtm", nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "rtm"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w; give -state DIR or -state none", err)
	}
	return filepath.Join(home, ".local", "state", "rtm"), nil
}

// Open makes the directory if it is missing (mode 0700), checks that it is
// rtmd's own and not writable by others, locks it, and reads its history
// id, making one if the directory holds no state yet.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := checkOwn(path); err != nil {
		return nil, err
	}
	d := &Dir{Path: path}
	if err := d.takeLock(); err != nil {
		return nil, err
	}
	fail := func(err error) (*Dir, error) {
		d.Close()
		return nil, err
	}
	if err := d.removeLeftovers(); err != nil {
		return fail(err)
	}
	if err := d.readHistory(); err != nil {
		return fail(err)
	}
	return d, nil
}

// checkOwn refuses a directory that another user owns, or that others
// may write: whoever can write it can make rtmd load any table.
func checkOwn(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("state directory: %w", os.NewSyscallError("stat", err))
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("state directory %s: not a directory", path)
	case st.Uid != uint32(os.Geteuid()):
		return fmt.Errorf("state directory %s: owned by uid %d, not rtmd's uid %d", path, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state directory %s: mode %04o lets others write it; want 0700", path, st.Mode&0o7777)
	}
	return nil
}

// takeLock flocks the directory itself (a lock file could be removed
// under rtmd, and the next rtmd would lock a new one) and writes rtmd's
// pid into the lock file, for the message a second rtmd gives.
func (d *Dir) takeLock() error {
	fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("state directory %s: lock: %w", d.Path, os.NewSyscallError("open", err))
	}
	dir := os.NewFile(uintptr(fd), d.Path)
	name := filepath.Join(d.Path, "lock")
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		dir.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder, _ := readSmall(name, 32)
			return fmt.Errorf("state directory %s is in use by another rtmd (pid %s); give each rtmd its own -state DIR", d.Path, strings.TrimSpace(string(holder)))
		}
		return fmt.Errorf("state directory %s: lock: %w", d.Path, os.NewSyscallError("flock", err))
	}
	d.lock = dir
	// The pid is for people; the flock is the lock.
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if err != nil {
		d.Close()
		return fmt.Errorf("state directory %s: lock file: %w", d.Path, err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	}
	f.Close()
	return nil
}

// readSmall reads at most n bytes of a regular file, not following a
// symbolic link and not waiting on a FIFO.
func readSmall(name string, n int) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file", name, FileKind(st.Mode()))
	}
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return b[:m], err
}

// Close unlocks the directory.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing drops the flock
	d.lock = nil
	return err
}

// removeLeftovers removes files a crash left half written, and refuses a
// state file that is not a regular file (a symlink could lead rtmd's
// writes elsewhere; opening a FIFO would hang it).
func (d *Dir) removeLeftovers() error {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if isState(n) && !e.Type().IsRegular() {
			return fmt.Errorf("state directory %s: %s is a %s, not a regular file; move it away", d.Path, n, FileKind(e.Type()))
		}
		if isLeftover(n) {
			if err := os.Remove(filepath.Join(d.Path, n)); err != nil {
				return fmt.Errorf("state directory: removing a leftover: %w", err)
			}
			d.Removed = append(d.Removed, n)
		}
	}
	return nil
}

// isLeftover reports whether name is one of the files rtmd writes and
// renames: history.tmp, runs.tmp, snapshot-SEQ.tmp, journal-SEQ.new.
func isLeftover(name string) bool {
	if name == "history.tmp" || name == "runs.tmp" {
		return true
	}
	if base, ok := strings.CutSuffix(name, ".tmp"); ok {
		kind, _, ok := parseName(base)
		return ok && kind == "snapshot"
	}
	if base, ok := strings.CutSuffix(name, ".new"); ok {
		kind, _, ok := parseName(base)
		return ok && kind == "journal"
	}
	return false
}

// parseName parses snapshot-SEQ or journal-SEQ.
func parseName(name string) (kind string, seq uint64, ok bool) {
	kind, hexSeq, ok := strings.Cut(name, "-")
	if !ok || len(hexSeq) != 16 || (kind != "snapshot" && kind != "journal") {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(hexSeq, 16, 64)
	return kind, seq, err == nil
}

// isState reports whether name is one of the files rtmd reads back.
func isState(name string) bool {
	return name == "history" || name == "runs" || strings.HasPrefix(name, "snapshot-") || strings.HasPrefix(name, "journal-")
}

// FileKind names the kind of file m is, for errors about a file that is
// not a regular one.
func FileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// readHistory reads the history id, or makes one for a directory that
// holds no state.
func (d *Dir) readHistory() error {
	name := filepath.Join(d.Path, "history")
	b, err := readSmall(name, 64)
	if errors.Is(err, os.ErrNotExist) {
		snaps, journals, err := d.Files()
		if err != nil {
			return err
		}
		if len(snaps)+len(journals) > 0 {
			return fmt.Errorf("state directory %s: state files but no history file; it is damaged (restore it, or remove the directory to start empty)", d.Path)
		}
		rand.Read(d.History[:])
		return writeFile(name, []byte(hex.EncodeToString(d.History[:])+"\n"))
	}
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if d.History, err = parseID(s); err != nil {
		return fmt.Errorf("state directory %s: history file %w", d.Path, err)
	}
	return nil
}

// SetHistory gives the directory a new history id, stored before it
// returns. The runs before it are forgotten: the state does not continue
// theirs.
func (d *Dir) SetHistory(h [16]byte) error {
	if err := writeFile(filepath.Join(d.Path, "runs"), nil); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(d.Path, "history"), []byte(hex.EncodeToString(h[:])+"\n")); err != nil {
		return err
	}
	d.History = h
	return nil
}

// A Run is one start of rtmd on the directory: its id, which rtmd tells
// subscribers in Welcome, and the sequence number its changes ended at
// (as the next start read the state back). A subscriber that holds the
// table of a run at a sequence number up to End holds a state that this
// directory continues, and may resume; one past End holds changes that
// are not in it (the directory was restored from an older copy).
type Run struct {
	ID  [16]byte
	End uint64
}

// MaxRuns is how many runs the directory remembers.
const MaxRuns = 16

// NewRun records a start of rtmd that read the state back at seq: the
// run before it ended at seq. It returns the new run's id and the runs
// before it, newest first.
func (d *Dir) NewRun(seq uint64) (id [16]byte, before []Run, err error) {
	name := filepath.Join(d.Path, "runs")
	b, err := readSmall(name, 64*(MaxRuns+1))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return id, nil, fmt.Errorf("state directory: %w", err)
	}
	if before, err = parseRuns(b, seq); err != nil {
		return id, nil, fmt.Errorf("state directory %s: runs file, %w", d.Path, err)
	}
	rand.Read(id[:])
	out := hex.EncodeToString(id[:]) + "\n"
	for _, r := range before {
		out += fmt.Sprintf("%s %016x\n", hex.EncodeToString(r.ID[:]), r.End)
	}
	if err := writeFile(name, []byte(out)); err != nil {
		return id, nil, err
	}
	return id, before, nil
}

// parseRuns reads a runs file whose last run ended at seq: the runs,
// newest first, at most MaxRuns.
func parseRuns(b []byte, seq uint64) ([]Run, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] == "" {
		return nil, nil
	}
	last, err := parseID(lines[0])
	if err != nil {
		return nil, fmt.Errorf("line 1 %w", err)
	}
	before := []Run{{last, seq}}
	for i, l := range lines[1:] {
		h, end, _ := strings.Cut(l, " ")
		r := Run{}
		if r.ID, err = parseID(h); err == nil {
			r.End, err = strconv.ParseUint(end, 16, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: want an id and a sequence number", i+2, truncate(l, 64))
		}
		before = append(before, r)
	}
	return before[:min(len(before), MaxRuns)], nil
}

func parseID(s string) (id [16]byte, err error) {
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("holds %q, want 32 hex digits", truncate(s, 64))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("holds %q, want 32 hex digits", truncate(s, 64))
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// writeFile writes a small file whole: NAME.tmp, fsync, rename, fsync the
// directory.
func writeFile(name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = SyncDir(filepath.Dir(name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state directory: writing %s: %w", filepath.Base(name), err)
	}
	return nil
}

// SyncDir fsyncs a directory, so that a rename or a removal in it is on
// disk. The error names the directory.
func SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", path, err)
	}
	return nil
}

// SnapshotPath is the name of the snapshot at seq.
func (d *Dir) SnapshotPath(seq uint64) string {
	return filepath.Join(d.Path, fmt.Sprintf("snapshot-%016x", seq))
}

// JournalPath is the name of the journal that starts after seq.
func (d *Dir) JournalPath(seq uint64) string {
	return filepath.Join(d.Path, fmt.Sprintf("journal-%016x", seq))
}

// Files returns the sequence numbers of the snapshots and journals in the
// directory, in ascending order.
func (d *Dir) Files() (snapshots, journals []uint64, err error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	for _, e := range entries {
		kind, seq, ok := parseName(e.Name())
		if !ok {
			continue
		}
		if kind == "snapshot" {
			snapshots = append(snapshots, seq)
		} else {
			journals = append(journals, seq)
		}
	}
	slices.Sort(snapshots)
	slices.Sort(journals)
	return snapshots, journals, nil
}
