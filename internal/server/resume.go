package server

import (
	"encoding/binary"
	"sort"

	"github.com/rtm-project/rtm/internal/wire"
)

// A subscriber that reconnects may resume: it says the history and the
// sequence number of the table it holds, and rtmd sends it the changes
// after that (a Resumed frame, then Changes frames) instead of the whole
// table, when it still has them. rtmd keeps the last ResumeWindow bytes of
// published changes for that, in memory, read back from the journal at
// start.

// DefaultResumeWindow is how many bytes of published changes rtmd keeps
// for subscribers that resume (Config.ResumeWindow).
const DefaultResumeWindow = 64 << 20

// retained is one turn's published changes, first..last.
type retained struct {
	first, last uint64
	bufs        [][]byte // Changes frames, shared with the subscribers
	size        int
}

// window is the published changes kept for resuming subscribers, oldest
// first, at most max bytes (and at least the last turn's): every change
// after from.
type window struct {
	turns []retained
	size  int
	max   int
	from  uint64
}

// add keeps a turn's changes. Other frames among them (a MAC segment
// that grew) are left out: a resuming client is told the segment of now.
func (w *window) add(first, last uint64, bufs [][]byte) {
	if first > last {
		return
	}
	size := 0
	for _, b := range bufs {
		size += len(b)
		if !onlyChanges(b) {
			bufs = suffix(bufs, first-1)
			break
		}
	}
	if len(w.turns) == 0 {
		w.from = first - 1
	}
	w.turns = append(w.turns, retained{first, last, bufs, size})
	w.size += size
	for w.size > w.max && len(w.turns) > 1 {
		w.size -= w.turns[0].size
		w.turns[0] = retained{}
		w.turns = w.turns[1:]
		w.from = w.turns[0].first - 1
	}
}

// since returns the changes after seq, through the last kept, as Changes
// frames; false if some of them are no longer kept.
func (w *window) since(seq uint64) ([][]byte, bool) {
	if seq < w.from {
		return nil, false
	}
	i := sort.Search(len(w.turns), func(i int) bool { return w.turns[i].last > seq })
	if i == len(w.turns) {
		return nil, true // nothing after seq
	}
	if w.turns[i].first > seq+1 {
		return nil, false
	}
	var out [][]byte
	if t := w.turns[i]; t.first <= seq {
		out = append(out, suffix(t.bufs, seq)...)
		i++
	}
	for _, t := range w.turns[i:] {
		out = append(out, t.bufs...)
	}
	return out, true
}

// suffix re-encodes the changes after seq of bufs.
func suffix(bufs [][]byte, seq uint64) [][]byte {
	var cw wire.ChangeWriter
	var d wire.Decoder
	for _, b := range bufs {
		for {
			typ, p, rest, ok := wire.NextFrame(b)
			if !ok {
				break
			}
			b = rest
			if typ != wire.TChanges {
				continue
			}
			d.Changes(p, func(c wire.Change) {
				if c.Seq <= seq {
					return
				}
				switch c.Op {
				case wire.OpMACAdd, wire.OpMACChange, wire.OpMACDel:
					cw.AddMAC(c.Seq, c.Op, c.MAC, c.Slot, c.IP, c.Dev)
				case wire.OpFlush:
					cw.AddFlush(c.Seq)
				default:
					cw.Add(c.Seq, c.Op, c.Route)
				}
			})
		}
	}
	return cw.Take()
}

func onlyChanges(b []byte) bool {
	for {
		typ, _, rest, ok := wire.NextFrame(b)
		if !ok {
			return true
		}
		if typ != wire.TChanges {
			return false
		}
		b = rest
	}
}

// frameSeqs returns the first and last sequence numbers of a Changes
// frame's payload.
func frameSeqs(p []byte) (first, last uint64, ok bool) {
	if len(p) < 12 {
		return 0, 0, false
	}
	first = binary.LittleEndian.Uint64(p)
	n := binary.LittleEndian.Uint32(p[8:])
	if n == 0 {
		return 0, 0, false
	}
	return first, first + uint64(n) - 1, true
}

// resume subscribes c from after, if history is this rtmd's and the
// changes after are still kept; it reports whether it did.
func (s *Server) resume(c *conn, history [wire.HistoryLen]byte, after uint64) bool {
	if history != s.history || after > s.seq {
		return false
	}
	if err := s.macs.check(); err != nil { // as a snapshot does: the segment may have failed under the client
		s.log.Error("MAC table", "err", err)
	}
	s.publish() // this turn's changes so far are in the window
	bufs, ok := s.window.since(after)
	if !ok {
		return false
	}
	c.subscribed = true
	// The segment first: after a restart it is another one.
	c.enqueue(wire.AppendMACSeg(nil, s.macs.segInfo()))
	c.enqueue(wire.AppendResumed(nil, after))
	if len(bufs) > 0 {
		c.enqueueChanges(bufs, s.seq)
	}
	s.rates.info("resumed", "subscriber resumed", "client", c, "after", after, "seq", s.seq)
	return true
}
