package wire

import (
	"encoding/binary"
	"slices"

	"github.com/rtm-project/rtm/internal/route"
)

// ChangeWriter appends change records to a buffer as Changes frames of at
// most about 64 KiB each, so that a big batch becomes one buffer that every
// subscriber is sent as it is.
type ChangeWriter struct {
	buf   []byte
	off   int // start of the open frame
	count uint32
	open  bool
}

// Add appends one change. Sequence numbers must be consecutive within a
// ChangeWriter's buffer.
func (w *ChangeWriter) Add(seq uint64, op byte, r route.Route) {
	if !w.open || len(w.buf)-w.off > chunkPayload {
		w.close()
		w.buf, w.off = BeginFrame(w.buf, TChanges)
		w.buf = binary.LittleEndian.AppendUint64(w.buf, seq)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
		w.count, w.open = 0, true
	}
	w.buf = append(w.buf, op)
	if op == OpDel {
		w.buf = AppendPrefix(w.buf, r.Dst)
	} else {
		w.buf = AppendRoute(w.buf, r)
	}
	w.count++
}

func (w *ChangeWriter) close() {
	if !w.open {
		return
	}
	binary.LittleEndian.PutUint32(w.buf[w.off+HeaderLen+8:], w.count)
	w.buf = EndFrame(w.buf, w.off)
	w.open = false
}

// Grow makes room for n more bytes, so that a big batch of known size is
// not copied as it grows.
func (w *ChangeWriter) Grow(n int) { w.buf = slices.Grow(w.buf, n) }

// Len returns the bytes written so far.
func (w *ChangeWriter) Len() int { return len(w.buf) }

// Take closes the open frame and returns the encoded frames. The writer
// starts a new buffer afterwards, so the bytes returned may be shared.
func (w *ChangeWriter) Take() []byte {
	w.close()
	b := w.buf
	w.buf = nil
	return b
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

// AppendErrorReply appends a Reply frame that carries an error message.
func AppendErrorReply(b []byte, id uint32, msg string) []byte {
	return AppendReply(b, id, StatusError, AppendString(nil, msg))
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
func AppendWelcome(b []byte, seq uint64, server string) []byte {
	b, off := BeginFrame(b, TWelcome)
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = AppendString(b, server)
	return EndFrame(b, off)
}
