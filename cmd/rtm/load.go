package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/route"
)

// load reads route lines, checks them all (a bad line fails the batch
// before anything is sent), sorts them and sends them as one batch.
func (e *env) load(ctx context.Context, file string) error {
	data, name, err := e.readInput(file)
	if err != nil {
		return err
	}
	// The routes are encoded as they are parsed; nothing keeps the text,
	// and it is not changed, so it need not be copied into a string.
	b, err := parseRoutes(unsafe.String(unsafe.SliceData(data), len(data)), &e.ignored)
	if err != nil {
		return fmt.Errorf("%s:%w (nothing loaded)", name, err)
	}
	b.Sort()
	c, err := e.reqConn(ctx)
	if err != nil {
		return err
	}
	ctx, done := e.request(ctx, loadScale(b.Len()))
	defer done()
	_, _, err = c.LoadBatch(ctx, b)
	return err
}

// readInput reads all of file, or of stdin for "-", and returns the name
// to give in messages.
func (e *env) readInput(file string) ([]byte, string, error) {
	in, name := e.stdin, "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, file, err
		}
		defer f.Close()
		in, name = f, file
	}
	data, err := readAll(in)
	if err != nil {
		return nil, name, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, name, nil
}

// readAll reads all of r, in one allocation when r is a regular file.
func readAll(r io.Reader) ([]byte, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			b := make([]byte, 0, fi.Size()+1)
			for {
				n, err := f.Read(b[len(b):cap(b)])
				b = b[:len(b)+n]
				if err == io.EOF {
					return b, nil
				}
				if err != nil {
					return b, err
				}
				if len(b) == cap(b) {
					b = append(b, 0)[:len(b)] // grew since Stat
				}
			}
		}
	}
	return io.ReadAll(r)
}

// parseRoutes parses routes as `ip route show` prints them: one a line,
// or a multipath route over several lines, skipping blank lines and #
// comments, and counting the words rtm does not keep in ig. It splits big
// inputs at line boundaries and parses the pieces in parallel; an error is
// reported as "LINE: reason" for the first bad line.
func parseRoutes(text string, ig *ignoredWords) (*client.Batch, error) {
	n := runtime.GOMAXPROCS(0)
	if len(text) < 1<<20 {
		n = 1
	}
	pieces := make([]string, 0, n)
	for i := n; i > 1; i-- {
		cut := len(text) / i
		// Cut before a line that is not the continuation of a multipath
		// route.
		for {
			j := strings.IndexByte(text[cut:], '\n')
			if j < 0 {
				cut = -1
				break
			}
			cut += j + 1
			if !isContinuation(text[cut:]) {
				break
			}
		}
		if cut > 0 {
			pieces = append(pieces, text[:cut])
			text = text[cut:]
		}
	}
	pieces = append(pieces, text)

	type result struct {
		batch   client.Batch
		ignored ignoredWords
		line    int // of the first bad line, counted within the piece
		err     error
	}
	results := make([]result, len(pieces))
	var wg sync.WaitGroup
	for i, p := range pieces {
		wg.Go(func() {
			res := &results[i]
			// An IPv4 line of about 40 bytes encodes to about 15.
			res.batch.Grow(len(p)/40, len(p)/2)
			for num, l := range route.Lines(p) {
				l = strings.TrimSpace(l)
				if l == "" || l[0] == '#' {
					continue
				}
				ignored, err := res.batch.AddText(l, 0)
				if err != nil {
					res.line, res.err = num, err
					return
				}
				if ignored > 0 {
					res.ignored.note(l, ignored)
				}
			}
		})
	}
	wg.Wait()
	lines := 0
	for i, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("%d: %w", lines+r.line, r.err)
		}
		lines += strings.Count(pieces[i], "\n")
		ig.add(&r.ignored)
	}
	b := &results[0].batch
	for i := 1; i < len(results); i++ {
		b.Append(&results[i].batch)
	}
	return b, nil
}

// isContinuation reports whether s begins a continuation line of a
// multipath route: white space, then "nexthop".
func isContinuation(s string) bool {
	t := strings.TrimLeft(s, " \t")
	return len(t) < len(s) && strings.HasPrefix(t, "nexthop")
}
