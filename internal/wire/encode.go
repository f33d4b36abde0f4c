package wire

import (
	"encoding/binary"
	"net/netip"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
)

// ChangeWriter appends change records as Changes frames of at most about
// 64 KiB each, into segments of about 256 KiB: a big batch becomes a list of
// buffers that every subscriber is sent as they are, and is never copied to
// grow.
type ChangeWriter struct {
	segs  [][]byte // full segments
	buf   []byte   // the segment being written
	off   int      // start of the open frame in buf
	count uint32
	open  bool
	size  int // bytes in segs
}

const segSize = 256 << 10

// Add appends one change. Sequence numbers must be consecutive within a
// ChangeWriter's buffers.
func (w *ChangeWriter) Add(seq uint64, op byte, r route.Route) {
	w.begin(seq)
	w.buf = append(w.buf, op)
	if op == OpDel {
		w.buf = AppendKey(w.buf, r.Key())
	} else {
		w.buf = AppendRoute(w.buf, r)
	}
	w.count++
}

// AddRaw appends one change whose route (or prefix, for OpDel) is already
// encoded, as AppendRoute writes it.
func (w *ChangeWriter) AddRaw(seq uint64, op byte, raw []byte) {
	w.begin(seq)
	w.buf = append(w.buf, op)
	w.buf = append(w.buf, raw...)
	w.count++
}

// AddMAC appends one MAC change: OpMACAdd or OpMACChange with the record's
// slot, the IP and the MAC's interface, or OpMACDel.
func (w *ChangeWriter) AddMAC(seq uint64, op byte, m mac.Addr, slot uint32, ip netip.Addr, dev string) {
	w.begin(seq)
	w.buf = append(w.buf, op)
	w.buf = append(w.buf, m[:]...)
	if op != OpMACDel {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, slot)
		w.buf = AppendAddr(w.buf, ip)
		w.buf = AppendDev(w.buf, dev)
	}
	w.count++
}

// AddFlush appends a flush.
func (w *ChangeWriter) AddFlush(seq uint64) {
	w.begin(seq)
	w.buf = append(w.buf, OpFlush)
	w.count++
}

// AppendFrame closes the open Changes frame and appends a whole frame of
// another type, such as MACSeg, in its place in the stream.
func (w *ChangeWriter) AppendFrame(frame []byte) {
	w.close()
	w.buf = append(w.buf, frame...)
}

// begin opens a new frame, and a new segment, when needed.
func (w *ChangeWriter) begin(seq uint64) {
	if !w.open || len(w.buf)-w.off > chunkPayload {
		w.close()
		if len(w.buf) >= segSize-chunkPayload {
			w.segs = append(w.segs, w.buf)
			w.size += len(w.buf)
			w.buf = nil
		}
		if w.buf == nil {
			// Most turns carry a change or two: start small, and
			// let append grow the first segment. Once a batch fills a
			// segment, the next ones are made whole.
			size := 4 << 10
			if len(w.segs) > 0 {
				size = segSize + 1024
			}
			w.buf = make([]byte, 0, size)
		}
		w.buf, w.off = BeginFrame(w.buf, TChanges)
		w.buf = binary.LittleEndian.AppendUint64(w.buf, seq)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
		w.count, w.open = 0, true
	}
}

func (w *ChangeWriter) close() {
	if !w.open {
		return
	}
	binary.LittleEndian.PutUint32(w.buf[w.off+HeaderLen+8:], w.count)
	w.buf = EndFrame(w.buf, w.off)
	w.open = false
}

// Len returns the bytes written so far.
func (w *ChangeWriter) Len() int { return w.size + len(w.buf) }

// Take closes the open frame and returns the encoded frames, in order, in
// one or more buffers. The writer starts new buffers afterwards, so the
// ones returned may be shared.
func (w *ChangeWriter) Take() [][]byte {
	w.close()
	segs := w.segs
	if len(w.buf) > 0 {
		segs = append(segs, w.buf)
	}
	w.segs, w.buf, w.size = nil, nil, 0
	return segs
}

// RouteWriter appends routes as frames of one type whose payload is a fixed
// head, a count and routes: Snapshot frames, and the chunks of a load.
type RouteWriter struct {
	Typ   byte
	Head  []byte // payload bytes before the count
	buf   []byte
	off   int
	count uint32
	open  bool
}

// Add appends one route.
func (w *RouteWriter) Add(r route.Route) {
	if !w.open {
		w.buf, w.off = BeginFrame(w.buf, w.Typ)
		w.buf = append(w.buf, w.Head...)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
		w.count, w.open = 0, true
	}
	w.buf = AppendRoute(w.buf, r)
	w.count++
}

// Full reports whether the open frame has reached its size.
func (w *RouteWriter) Full() bool { return w.open && len(w.buf)-w.off > chunkPayload }

// Flush closes the open frame, if any, and returns all frames written since
// the last Flush. The bytes are valid until the next Add.
func (w *RouteWriter) Flush() []byte {
	if w.open {
		binary.LittleEndian.PutUint32(w.buf[w.off+HeaderLen+len(w.Head):], w.count)
		w.buf = EndFrame(w.buf, w.off)
		w.open = false
	}
	b := w.buf
	w.buf = w.buf[:0]
	return b
}

// AppendRequest appends a Request frame with the given body.
func AppendRequest(b []byte, id uint32, kind byte, body []byte) []byte {
	b, off := BeginFrame(b, TRequest)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, kind)
	b = append(b, body...)
	return EndFrame(b, off)
}

// AppendReply appends a Reply frame with the given body.
func AppendReply(b []byte, id uint32, status byte, body []byte) []byte {
	b, off := BeginFrame(b, TReply)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, status)
	b = append(b, body...)
	return EndFrame(b, off)
}

// AppendErrorReply appends a Reply frame that carries an error: a status
// other than StatusOK and its message.
func AppendErrorReply(b []byte, id uint32, status byte, msg string) []byte {
	return AppendReply(b, id, status, AppendString(nil, msg))
}

// AppendError appends a fatal Error frame.
func AppendError(b []byte, msg string) []byte {
	return AppendFrame(b, TError, AppendString(nil, msg))
}

// AppendSnapBegin appends a SnapBegin frame.
func AppendSnapBegin(b []byte, seq uint64, reason byte, routes uint64) []byte {
	b, off := BeginFrame(b, TSnapBegin)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = append(b, reason)
	b = binary.LittleEndian.AppendUint64(b, routes)
	return EndFrame(b, off)
}

// AppendSynced appends a Synced frame.
func AppendSynced(b []byte, seq uint64) []byte {
	b, off := BeginFrame(b, TSynced)
	b = binary.LittleEndian.AppendUint64(b, seq)
	return EndFrame(b, off)
}

// AppendWelcome appends a Welcome frame.
func AppendWelcome(b []byte, seq uint64, server string, history [HistoryLen]byte) []byte {
	b, off := BeginFrame(b, TWelcome)
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = AppendString(b, server)
	b = append(b, history[:]...)
	return EndFrame(b, off)
}

// AppendResume appends the body of a Subscribe request that asks to
// resume after seq in history.
func AppendResume(b []byte, history [HistoryLen]byte, seq uint64) []byte {
	b = append(b, history[:]...)
	return binary.LittleEndian.AppendUint64(b, seq)
}

// AppendResumed appends a Resumed frame.
func AppendResumed(b []byte, seq uint64) []byte {
	b, off := BeginFrame(b, TResumed)
	b = binary.LittleEndian.AppendUint64(b, seq)
	return EndFrame(b, off)
}
