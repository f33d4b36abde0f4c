package server

import (
	"encoding/binary"
	"slices"
	"sort"

	"github.com/rtm-project/rtm/internal/wire"
)

// A subscriber that reconnects may resume: it says the run (the history
// id of the Welcome it had) and the sequence number of the table it
// holds, and rtmd sends it the changes after that (a Resumed frame, then
// Changes frames) instead of the whole table, when it still has them. rtmd keeps the last ResumeWindow bytes of
// published changes for that, in memory, read back from the journal at
// start.

// DefaultResumeWindow is how many bytes of published changes rtmd keeps
// for subscribers that resume (Config.ResumeWindow).
const DefaultResumeWindow = 64 << 20

// kept is one Changes frame in the window: the changes first..last.
type kept struct {
	first, last uint64
	b           []byte // the frame; its capacity runs to the end of its array
	array       uint64 // which array b is in, for joining neighbours
	off         int    // where b starts in it
}

// window is the published changes kept for resuming subscribers, oldest
// first, at most max bytes (and at least the last frame): every change
// after from. It keeps them frame by frame, so that a subscriber that
// resumes inside a big turn costs at most one re-encoded frame, and
// frames that lie side by side in one array go out as one buffer.
//
// A turn's buffers are shared with the subscribers' queues when they are
// big and full; the frames of small or mostly empty ones (a turn of one
// change sits in a 4 KiB buffer) are copied into the window's own chunks,
// so that what the window holds is what it counts.
type window struct {
	frames []kept
	size   int
	max    int
	from   uint64

	chunk  []byte // the chunk small frames are copied into
	arrays uint64 // the last array number given out
}

const (
	windowChunk = 256 << 10 // size of the window's own chunks
	sharedMin   = 64 << 10  // a smaller buffer is copied, not shared
)

// add keeps a turn's changes. Other frames among them (a MAC segment
// that grew) are left out: a resuming client is told the segment of now.
func (w *window) add(first, last uint64, bufs [][]byte) {
	if first > last {
		return
	}
	if len(w.frames) == 0 {
		w.from = first - 1
	}
	for _, b := range bufs {
		shared := len(b) >= sharedMin && len(b) >= cap(b)/2
		if shared {
			w.arrays++
		}
		for off := 0; ; {
			typ, p, rest, ok := wire.NextFrame(b[off:])
			if !ok {
				break
			}
			n := len(b) - off - len(rest)
			if lo, hi, ok := frameSeqs(p); ok && typ == wire.TChanges {
				if shared {
					w.keep(kept{lo, hi, b[off : off+n], w.arrays, off})
				} else {
					w.copyIn(lo, hi, b[off:off+n])
				}
			}
			off += n
		}
	}
	for w.size > w.max && len(w.frames) > 1 {
		w.size -= len(w.frames[0].b)
		w.frames[0] = kept{}
		w.frames = w.frames[1:]
		w.from = w.frames[0].first - 1
	}
}

// copyIn keeps a copy of frame in the window's chunk.
func (w *window) copyIn(first, last uint64, frame []byte) {
	if cap(w.chunk)-len(w.chunk) < len(frame) {
		w.chunk = make([]byte, 0, max(windowChunk, len(frame)))
		w.arrays++
	}
	off := len(w.chunk)
	w.chunk = append(w.chunk, frame...)
	w.keep(kept{first, last, w.chunk[off:len(w.chunk)], w.arrays, off})
}

func (w *window) keep(k kept) {
	w.frames = append(w.frames, k)
	w.size += len(k.b)
}

// since returns the changes after seq, through the last kept, as Changes
// frames; false if some of them are no longer kept.
func (w *window) since(seq uint64) ([][]byte, bool) {
	if seq < w.from {
		return nil, false
	}
	i := sort.Search(len(w.frames), func(i int) bool { return w.frames[i].last > seq })
	if i == len(w.frames) {
		return nil, true // nothing after seq
	}
	if w.frames[i].first > seq+1 {
		return nil, false
	}
	var out [][]byte
	if f := w.frames[i]; f.first <= seq {
		out = append(out, suffix(f.b, seq))
		i++
	}
	var prev kept
	for _, f := range w.frames[i:] {
		if n := len(out); n > 0 && prev.b != nil && f.array == prev.array && f.off == prev.off+len(prev.b) {
			out[n-1] = out[n-1][:len(out[n-1])+len(f.b)] // f follows prev in their array
		} else {
			out = append(out, f.b)
		}
		prev = f
	}
	return out, true
}

// suffix re-encodes the changes after seq of a Changes frame.
func suffix(frame []byte, seq uint64) []byte {
	var cw wire.ChangeWriter
	var d wire.Decoder
	typ, p, _, ok := wire.NextFrame(frame)
	if !ok || typ != wire.TChanges {
		return nil
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
	return slices.Concat(cw.Take()...)
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

// continues reports whether the table of run at seq is one that this
// rtmd's state continues: run is this one, or one before it on the state
// directory that ended at seq or later. A subscriber that holds another
// (rtmd's state was lost, or restored from an older copy, or rtmd keeps
// none) is sent the table with ReasonHistory.
func (s *Server) continues(run [wire.HistoryLen]byte, seq uint64) bool {
	if run == s.history {
		return seq <= s.seq
	}
	for _, r := range s.runs {
		if r.ID == run {
			return seq <= r.End
		}
	}
	return false
}

// resume subscribes c from after, if the changes after it are still kept;
// it reports whether it did.
func (s *Server) resume(c *conn, after uint64) bool {
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
