package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"time"

	"github.com/rtm-project/rtm/internal/wire"
)

// readBuffer is a connection's read buffer. It is small: most peers are
// idle or send small requests, and a large frame (a load chunk) is read
// straight into its own buffer, which wire.Reader releases after it.
const readBuffer = 4 << 10

// A request frame is at most maxRequest bytes (load chunks are about
// 64 KiB), and once its header is in, its payload must follow within
// frameTimeout: a peer cannot make rtmd hold a large buffer for long by
// sending part of a frame.
const (
	maxRequest   = 256 << 10
	frameTimeout = 10 * time.Second
)

func (c *conn) read() {
	r := wire.NewReaderSize(c.nc, readBuffer)
	r.Max = maxRequest
	c.nc.SetReadDeadline(time.Now().Add(helloTimeout))
	typ, p, err := r.ReadFrame()
	if err != nil {
		c.fatal(fmt.Errorf("reading hello: %w", err))
		return
	}
	if typ != wire.THello {
		c.fatal(fmt.Errorf("protocol error: first frame has type %d, want Hello (%d)", typ, wire.THello))
		return
	}
	h, err := wire.DecodeHello(p)
	if err != nil {
		c.fatal(fmt.Errorf("bad hello: %w", err))
		return
	}
	c.name = h.Name
	if h.Version != wire.Version {
		c.fatal(fmt.Errorf("unsupported protocol version %d: rtmd speaks version %d", h.Version, wire.Version))
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	if !c.send(evHello{c}) {
		return
	}
	inFrame := false // a frame's payload is due, by the read deadline
	r.BeforePayload = func(n uint32) {
		if n > 0 {
			c.nc.SetReadDeadline(time.Now().Add(frameTimeout))
			inFrame = true
		}
	}
	var (
		d  wire.Decoder
		ld staging
	)
	defer ld.reset(c.s)
	for {
		typ, p, err := r.ReadFrame()
		if inFrame {
			c.nc.SetReadDeadline(time.Time{}) // idle between frames is fine
			inFrame = false
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				c.gone(errors.New("closed by client"))
			} else {
				c.fatal(err)
			}
			return
		}
		if typ != wire.TRequest {
			c.fatal(fmt.Errorf("protocol error: frame type %d from a client", typ))
			return
		}
		d.Reset(p)
		ev := evRequest{c: c, id: d.U32("id"), kind: d.U8("kind")}
		ev.err = c.permitted(ev.kind)
		if ev.err != nil && ev.kind != wire.KLoad && ev.kind != wire.KMACLoad {
			// Refused whatever it says, so not decoded: the decoder
			// interns nothing for a peer that may not write (a load's
			// staging drops its chunks).
			d.Rest()
			if !c.submit(ev) {
				return
			}
			continue
		}
		switch ev.kind {
		case wire.KAdd, wire.KChange, wire.KReplace, wire.KDel, wire.KRouteFlush,
			wire.KMACAdd, wire.KMACChange, wire.KMACReplace, wire.KMACDel:
			decodeChange(&d, &ev)
		case wire.KBatch:
			if ev.batch, ev.staged, err = c.stageBatch(&d); err != nil {
				c.fatal(err)
				return
			}
		case wire.KGet:
			ev.table = d.U32("table")
			ev.addr = d.Addr("address")
		case wire.KSubscribe:
			if d.Remaining() > 0 { // resume after a sequence number
				ev.resume = true
				ev.history = d.History("history")
				ev.after = d.U64("sequence")
			}
		case wire.KFlush, wire.KClients, wire.KStatus, wire.KMACSeg:
		case wire.KRegister:
			ev.pid = int32(d.U32("pid"))
		case wire.KAck:
			c.acked.Store(d.U64("sequence"))
			if err := d.Finish(); err != nil {
				c.fatal(fmt.Errorf("bad request: %w", err))
				return
			}
			continue
		case wire.KGoodbye:
			if err := d.Finish(); err != nil {
				c.fatal(fmt.Errorf("bad request: %w", err))
				return
			}
			c.close()
			c.gone(errors.New("goodbye"))
			return
		case wire.KLoad, wire.KMACLoad:
			send, err := ld.chunk(c.s, &ev, &d)
			if err != nil {
				c.fatal(err)
				return
			}
			if send && !c.submit(ev) {
				c.s.staged.Add(-ev.staged)
				return
			}
			continue
		default:
			// A well-formed frame with a kind this rtmd does not know:
			// the loop answers with an error and the client stays.
			d.Rest()
		}
		if err := d.Finish(); err != nil {
			c.fatal(fmt.Errorf("bad request: %w", err))
			return
		}
		if !c.submit(ev) {
			c.s.staged.Add(-ev.staged)
			return
		}
	}
}

// decodeChange decodes the body of a change request of ev.kind, as a
// request or as an entry of a batch.
func decodeChange(d *wire.Decoder, ev *evRequest) {
	switch ev.kind {
	case wire.KAdd, wire.KChange, wire.KReplace:
		ev.route = d.Route()
	case wire.KDel, wire.KRouteFlush:
		ev.sel = d.Selector()
	case wire.KMACAdd, wire.KMACChange, wire.KMACReplace:
		ev.mac, ev.ip, ev.dev = d.MACValue()
	case wire.KMACDel:
		ev.mac = d.MAC("mac")
	}
}

// stageBatch checks a batch request's entries (flags, count, entries),
// each as the request of its kind, and copies them for the loop, which
// decodes them again as it applies them: a checked batch costs its bytes
// while it waits, charged to the staging budget that loads share, not a
// decoded request per entry.
func (c *conn) stageBatch(d *wire.Decoder) (*batch, int64, error) {
	b := &batch{force: d.U8("flags")&wire.BatchForce != 0}
	n := d.U32("count")
	raw := d.Rest()
	if err := d.Err(); err != nil {
		return nil, 0, fmt.Errorf("bad request: %w", err)
	}
	var one wire.Decoder
	for i, e := range batchEntries(raw, n) {
		if e.err != nil {
			return nil, 0, fmt.Errorf("bad request: batch entry %d: %w", i+1, e.err)
		}
		one.Reset(e.body)
		decodeChange(&one, &evRequest{kind: e.kind})
		if err := one.Finish(); err != nil {
			return nil, 0, fmt.Errorf("bad request: batch entry %d (kind %d): %w", i+1, e.kind, err)
		}
	}
	b.n, b.raw = n, append([]byte(nil), raw...)
	size := int64(len(b.raw))
	if total := c.s.staged.Add(size); total > c.s.cfg.Limits.StagedBytes {
		c.s.staged.Add(-size)
		c.s.rates.warn("staging budget", "batch refused: staging budget used up", "staged_bytes", total-size, "limit", c.s.cfg.Limits.StagedBytes)
		b.err = fmt.Errorf("batch refused: rtmd is staging %d bytes of loads and batches, limit %d (-max-staged); retry later", total-size, c.s.cfg.Limits.StagedBytes)
		b.raw, b.n = nil, 0
		return b, 0, nil
	}
	return b, size, nil
}

// batch is a KBatch request's entries, checked, as they came.
type batch struct {
	force bool
	n     uint32
	raw   []byte
	err   error // refused before the loop: the reply
}

type batchEntry struct {
	kind byte
	body []byte
	err  error // the entries end here
}

// batchEntries yields the n entries of raw (kind, length, body); an entry
// that does not fit, or bytes left after the last, end it with an error.
func batchEntries(raw []byte, n uint32) iter.Seq2[int, batchEntry] {
	return func(yield func(int, batchEntry) bool) {
		off := 0
		for i := 0; i < int(n); i++ {
			if len(raw)-off < 5 {
				yield(i, batchEntry{err: fmt.Errorf("truncated at byte %d", off)})
				return
			}
			kind, size := raw[off], binary.LittleEndian.Uint32(raw[off+1:])
			off += 5
			switch {
			case !wire.IsBatchKind(kind):
				yield(i, batchEntry{err: fmt.Errorf("kind %d may not be in a batch (changes but route flush)", kind)})
				return
			case uint64(size) > uint64(len(raw)-off):
				yield(i, batchEntry{err: fmt.Errorf("%d bytes, %d left", size, len(raw)-off)})
				return
			}
			if !yield(i, batchEntry{kind: kind, body: raw[off : off+int(size)]}) {
				return
			}
			off += int(size)
		}
		if off != len(raw) {
			yield(int(n), batchEntry{err: fmt.Errorf("%d bytes after the last entry", len(raw)-off)})
		}
	}
}

// submit sends a request to the loop once the peer has room for it
// (waitRoom). It returns false if the connection closed meanwhile.
func (c *conn) submit(ev evRequest) bool {
	if !c.waitRoom() {
		return false
	}
	if !c.send(ev) {
		c.answered(1, 0)
		return false
	}
	return true
}

// permitted checks a request's kind against what the peer may do, on the
// first frame of the request (the first chunk of a load), before anything
// of it is staged.
func (c *conn) permitted(kind byte) error {
	switch {
	case c.input == inTCP && (isMutation(kind) || kind == wire.KRegister):
		return errPermission("over TCP rtmd only serves subscriptions and queries")
	case c.input == inTCP && kind == wire.KClients:
		return errPermission("the client list is not served over TCP")
	case !c.mayChange && isMutation(kind):
		return errPermission("uid %d may not change the tables (root, uid %d%s may)", c.cred.Uid, os.Getuid(), c.s.groupText())
	}
	return nil
}

func (c *conn) send(ev event) bool {
	select {
	case c.s.events <- ev:
		return true
	case <-c.done:
		return false
	}
}
