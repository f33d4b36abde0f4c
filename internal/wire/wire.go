// Package wire encodes and decodes the frames of the rtm sync protocol, as
// docs/protocol.md lays them out.
//
// A frame is a 5-byte header (payload length, uint32 little-endian; frame
// type, one byte) and a payload. Encoders append to a caller's []byte and do
// not allocate once it has room; decoders validate every field and return an
// error that names the field and its offset, never panic, and never trust a
// length before checking it against what is there.
//
// Nothing in this package is safe for concurrent use, except that encoded
// bytes may be shared read-only.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
)

// Version is the protocol version this package speaks.
const Version = 2

// Magic opens every Hello payload.
const Magic = "RTM\x00"

// HeaderLen is the size of a frame header.
const HeaderLen = 5

// MaxPayload is the largest payload a Reader accepts; a longer frame is an
// error and ends the connection.
const MaxPayload = 1 << 20

// chunkPayload is where encoders of many records start a new frame.
const chunkPayload = 64 << 10

// MinRouteLen is the size of the shortest encoded route: an IPv4 prefix,
// flags and no next hop.
const MinRouteLen = 2 + 4 + 1 + 1

// Frame types.
const (
	THello     = 1  // client: magic, version, name
	TWelcome   = 2  // server: version, current sequence, server version text, history id
	TError     = 3  // server: a fatal error; the connection closes after it
	TRequest   = 4  // client: id, kind, body
	TReply     = 5  // server: id, status, body
	TSnapBegin = 6  // server: sequence S, reason, route count
	TSnapshot  = 7  // server: routes of the snapshot
	TSynced    = 8  // server: the snapshot at S is complete
	TChanges   = 9  // server: first sequence, count, change records
	TMACSeg    = 10 // server: the MAC segment that slots refer to from here on
	TSnapMACs  = 11 // server: MAC keys of the snapshot, with their slots
	TResumed   = 12 // server: sequence S: the client's table at S stands; the changes after S follow
)

// HistoryLen is the length of a history id: rtmd's state directory's, or
// a random one per run without one. Sequence numbers of two histories do
// not continue each other.
const HistoryLen = 16

// Request kinds.
const (
	KAdd        = 1
	KChange     = 2
	KReplace    = 3
	KDel        = 4
	KLoad       = 5 // a chunk of a batch load; flag LoadFinal on the last
	KGet        = 6
	KSubscribe  = 7
	KMACAdd     = 8
	KMACChange  = 9
	KMACReplace = 10
	KMACDel     = 11
	KMACLoad    = 12 // a chunk of a batch of MAC replaces; LoadFinal on the last
	KRegister   = 13 // pid uint32: signal me on a flush
	KGoodbye    = 14 // no reply: the client is leaving
	KAck        = 15 // sequence uint64; no reply: the client has applied up to it
	KFlush      = 16 // empty both tables
	KClients    = 17 // the reply is the connected clients, as JSON
	KStatus     = 18 // the reply is rtmd's status, as JSON
	KMACSeg     = 19 // the reply is the current MAC segment, as a MACSeg payload
	KRouteFlush = 20 // selector: delete the routes it picks; the reply is the count and sequence
	KBatch      = 21 // many changes, applied in order in one turn; see AppendBatchEntry
)

// BatchForce, in a KBatch request's flags, applies every change of the
// batch whatever fails; without it the batch stops at its first failure.
const BatchForce = 1

// IsBatchKind reports whether a request of this kind may be an entry of a
// KBatch request: the changes to the tables that cost rtmd's loop little
// each. A route flush, which scans every route, goes in a request of its
// own, so that a batch of them cannot hold the loop for long.
func IsBatchKind(kind byte) bool {
	switch kind {
	case KAdd, KChange, KReplace, KDel, KMACAdd, KMACChange, KMACReplace, KMACDel, KFlush:
		return true
	}
	return false
}

// AppendBatchEntry appends one entry of a KBatch request: kind uint8, body
// length uint32, body (as the request of that kind carries it).
func AppendBatchEntry(b []byte, kind byte, body []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// DefaultMaxLoad is the most routes rtmd takes in one load by default.
const DefaultMaxLoad = 1 << 24

// LoadFinal marks the last chunk of a load.
const LoadFinal = 1

// Reply status codes.
const (
	StatusOK         = 0
	StatusError      = 1 // any other error; the body is the message
	StatusNotFound   = 2 // no such route or entry; the body is the message
	StatusExists     = 3 // add of a key that exists; the body is the message
	StatusPermission = 4 // the client may not do this; the body is the message
)

// Change ops in a Changes frame.
const (
	OpAdd       = 1
	OpChange    = 2
	OpDel       = 3
	OpMACAdd    = 4 // MAC, slot
	OpMACChange = 5 // MAC, slot
	OpMACDel    = 6 // MAC
	OpFlush     = 7 // no body: both tables are emptied
)

// Snapshot reasons.
const (
	ReasonNew     = 0 // a new subscription
	ReasonBacklog = 1 // the client fell too far behind; this replaces its table
	ReasonHistory = 2 // the client asked to resume a table this rtmd's state does not continue
)

// Change is one record of a Changes frame.
type Change struct {
	Seq   uint64
	Op    byte
	Route route.Route // OpDel: the key only
	MAC   mac.Addr    // the MAC ops
	Slot  uint32      // OpMACAdd, OpMACChange: the record in the segment
	IP    netip.Addr  // OpMACAdd, OpMACChange: the IP the record holds
	Dev   string      // OpMACAdd, OpMACChange: the MAC's interface, or ""
}

// MACSeg names a generation of the MAC segment.
type MACSeg struct {
	Gen      uint32
	Capacity uint32
	Name     string
}

// AppendMACSeg appends a MACSeg frame.
func AppendMACSeg(b []byte, s MACSeg) []byte {
	b, off := BeginFrame(b, TMACSeg)
	return EndFrame(AppendMACSegBody(b, s), off)
}

// AppendMACSegBody appends a MACSeg payload: the body of a MACSeg frame,
// and of the reply to KMACSeg.
func AppendMACSegBody(b []byte, s MACSeg) []byte {
	b = binary.LittleEndian.AppendUint32(b, s.Gen)
	b = binary.LittleEndian.AppendUint32(b, s.Capacity)
	return AppendString(b, s.Name)
}

// BeginFrame appends a frame header with a zero length; EndFrame fills it in.
func BeginFrame(b []byte, typ byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0, typ), len(b)
}

// EndFrame sets the length of the frame that BeginFrame started at off.
func EndFrame(b []byte, off int) []byte {
	binary.LittleEndian.PutUint32(b[off:], uint32(len(b)-off-HeaderLen))
	return b
}

// AppendFrame appends a whole frame.
func AppendFrame(b []byte, typ byte, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, typ)
	return append(b, payload...)
}

// AppendAddr appends a family byte (4 or 6) and the address bytes.
func AppendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		a4 := a.As4()
		return append(append(b, 4), a4[:]...)
	}
	a16 := a.As16()
	return append(append(b, 6), a16[:]...)
}

// AppendPrefix appends a prefix: family, length, address.
func AppendPrefix(b []byte, p netip.Prefix) []byte {
	if p.Addr().Is4() {
		a4 := p.Addr().As4()
		return append(append(b, 4, byte(p.Bits())), a4[:]...)
	}
	a16 := p.Addr().As16()
	return append(append(b, 6, byte(p.Bits())), a16[:]...)
}

// AppendText appends a long length-prefixed (uint32) string: a JSON reply,
// which can pass the 65,535 bytes of a string.
func AppendText(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// AppendString appends a length-prefixed (uint16) string, cut at 65535 bytes.
func AppendString(b []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Reader reads frames from a byte stream.
type Reader struct {
	r   *bufio.Reader
	buf []byte
	// Max, if set, is the largest payload this Reader accepts, below
	// MaxPayload.
	Max uint32
	// BeforePayload, if set, is called with the length of each frame
	// whose header has been read, before its payload is: a server bounds
	// the time a peer may take to send the rest.
	BeforePayload func(n uint32)
}

// DefaultReadBuffer is the read buffer of NewReader, sized for a client that
// receives a stream of large frames.
const DefaultReadBuffer = 256 << 10

// keepPayload is the largest payload buffer a Reader keeps between frames;
// a larger one, made for one large frame, is released at the next read.
const keepPayload = 128 << 10

// NewReader returns a Reader on r with a DefaultReadBuffer buffer.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, DefaultReadBuffer) }

// NewReaderSize returns a Reader on r with a read buffer of size bytes. A
// server with many mostly idle peers uses a small one: a frame longer than
// the buffer is read straight into its payload buffer, which is released
// after the next frame if it is large.
func NewReaderSize(r io.Reader, size int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size)}
}

// Buffered returns how many bytes have been read from the stream but not
// yet returned as frames.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ErrFrameTooLarge is returned for a frame longer than MaxPayload.
var ErrFrameTooLarge = errors.New("frame too large")

// ReadFrame returns the next frame. The payload is valid until the next call.
func (r *Reader) ReadFrame() (typ byte, payload []byte, err error) {
	if cap(r.buf) > keepPayload {
		r.buf = nil // the last frame was large; do not hold its buffer while idle
	}
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	limit := uint32(MaxPayload)
	if r.Max > 0 {
		limit = min(r.Max, limit)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if r.BeforePayload != nil {
		r.BeforePayload(n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	payload = r.buf[:n]
	if _, err := io.ReadFull(r.r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("truncated frame (type %d, %d bytes): %w", h[4], n, err)
	}
	return h[4], payload, nil
}

// NextFrame splits the first whole frame off b, for a buffer of encoded
// frames held in memory. ok is false when b holds no whole frame.
func NextFrame(b []byte) (typ byte, payload, rest []byte, ok bool) {
	if len(b) < HeaderLen {
		return 0, nil, b, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(len(b)-HeaderLen) < uint64(n) {
		return 0, nil, b, false
	}
	end := HeaderLen + int(n)
	return b[4], b[HeaderLen:end], b[end:], true
}

// Status is the reply to KStatus, as JSON.
type Status struct {
	Version string             `json:"version"`
	Uptime  float64            `json:"uptime_s"`
	Seq     uint64             `json:"seq"`
	Routes4 int                `json:"routes_v4"`
	Routes6 int                `json:"routes_v6"`
	MACs    int                `json:"macs"`
	Clients map[string]int     `json:"clients"` // by transport: "unix", "tcp"
	Inputs  map[string]Counter `json:"inputs"`  // "socket", "queue", "tcp", "console"
	Queue   string             `json:"queue"`
	SHM     string             `json:"shm"`
	TCP     string             `json:"tcp,omitempty"`
	// HeapLive is the Go heap rtmd's last garbage collection found live:
	// what rtmd holds, without what it has freed but not yet returned.
	HeapLive uint64 `json:"heap_live_bytes"`
	// State is the state directory's, without Config.State nil (and for
	// a TCP peer).
	State *StateStatus `json:"state,omitempty"`
}

// StateStatus is what `rtm status` says of the state directory.
type StateStatus struct {
	Dir          string  `json:"dir"`
	JournalBytes int64   `json:"journal_bytes"`
	Commits      uint64  `json:"commits"`
	FsyncP50     float64 `json:"fsync_p50_ms"` // of the last 1,024 commits
	FsyncP99     float64 `json:"fsync_p99_ms"`
	LastError    string  `json:"last_error,omitempty"` // the last failed commit's
	// The newest snapshot: when it was written (RFC 3339, "" for none),
	// its sequence number and size; the last failed compaction's error.
	SnapshotTime  string `json:"snapshot_time,omitempty"`
	SnapshotSeq   uint64 `json:"snapshot_seq"`
	SnapshotBytes int64  `json:"snapshot_bytes"`
	SnapshotError string `json:"snapshot_error,omitempty"`
}

// Counter counts the commands an input brought.
type Counter struct {
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
}

// ClientInfo describes one connected client in the reply to KClients,
// which is a JSON array of them.
type ClientInfo struct {
	ID         uint64 `json:"id"`
	PID        int32  `json:"pid"`
	UID        uint32 `json:"uid"`
	Name       string `json:"name"`
	Since      string `json:"since"` // RFC 3339, UTC
	Subscribed bool   `json:"subscribed"`
	Registered bool   `json:"registered"`
	Delivered  uint64 `json:"delivered"` // the last sequence number written to it
	Acked      uint64 `json:"acked"`     // the last it said it applied
	Backlog    int    `json:"backlog_bytes"`
	Resyncs    int    `json:"resyncs"`
	Transport  string `json:"transport"` // "unix" or "tcp"
}
