package journal_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/rtm-project/rtm/internal/journal"
)

// Example shows a start-up: replay the journal a whole commit at a time,
// cut a torn tail (and only a torn tail) off, append, commit once per loop
// turn.
func Example() {
	dir, err := os.MkdirTemp("", "journal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "journal")

	w, err := journal.Create(path, journal.Header{Seq: 0})
	if err != nil {
		log.Fatal(err)
	}
	w.Append([]byte("change 1"))
	w.Append([]byte("change 2"))
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}
	w.Append([]byte("change 3, never committed"))
	w.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{30, 0, 0, 0, 1, 2}) // what a crash mid-write leaves
	f.Close()

	r, err := journal.Open(path)
	if err != nil {
		log.Fatal(err) // a bad header: refuse to start
	}
	for {
		commit, err := r.Next()
		if err == io.EOF {
			break
		}
		var d *journal.DamageError
		if errors.As(err, &d) && d.Torn {
			fmt.Printf("torn tail at offset %d, %d bytes dropped\n", d.Offset, d.Dropped())
			if _, err := journal.Repair(path); err != nil {
				log.Fatal(err)
			}
			break
		}
		if err != nil {
			log.Fatal(err) // damage: refuse to start unless told to repair
		}
		fmt.Printf("replay one commit: %q\n", commit)
	}
	r.Close()

	w, err = journal.OpenAppend(path)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	w.Append([]byte("change 3"))
	if err := w.Commit(); err != nil {
		log.Fatal(err) // refuse mutations, keep serving reads, retry
	}
	fmt.Println("journal size", w.Size())
	// Output:
	// replay one commit: ["change 1" "change 2"]
	// torn tail at offset 88, 6 bytes dropped
	// journal size 108
}
