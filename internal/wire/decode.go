package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/rtm-project/rtm/internal/mac"
)

// maxDevNames bounds the interface names a Decoder interns.
const maxDevNames = 4096

// Decoder reads fields from one payload. The first bad field sets a sticky
// error and every later read returns zero values, so callers check Err once
// at the end of a record. A Decoder interns interface names so that decoding
// many routes does not allocate a string per route.
type Decoder struct {
	b       []byte
	off     int
	err     error
	devs    map[string]string
	lastDev string
	hops    hopCache
}

// Reset starts decoding payload p.
func (d *Decoder) Reset(p []byte) {
	d.b, d.off, d.err = p, 0, nil
}

// Err returns the first error met since Reset.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first error, or an error if bytes are left over.
func (d *Decoder) Finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.err = fmt.Errorf("%d unexpected bytes at byte %d", len(d.b)-d.off, d.off)
	}
	return d.err
}

func (d *Decoder) fail(field string, off int, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s at byte %d: %s", field, off, fmt.Sprintf(format, args...))
	}
}

func (d *Decoder) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail(field, d.off, "truncated: need %d bytes, have %d", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

// U8 reads one byte.
func (d *Decoder) U8(field string) byte {
	p := d.take(field, 1)
	if p == nil {
		return 0
	}
	return p[0]
}

// U16 reads a little-endian uint16.
func (d *Decoder) U16(field string) uint16 {
	p := d.take(field, 2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

// U32 reads a little-endian uint32.
func (d *Decoder) U32(field string) uint32 {
	p := d.take(field, 4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

// U64 reads a little-endian uint64.
func (d *Decoder) U64(field string) uint64 {
	p := d.take(field, 8)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

// String reads a uint16-length-prefixed UTF-8 string.
func (d *Decoder) String(field string) string {
	off := d.off
	return d.utf8Text(field, off, int(d.U16(field)))
}

// Text reads a long string (a uint32 length, AppendText).
func (d *Decoder) Text(field string) string {
	off := d.off
	return d.utf8Text(field, off, int(d.U32(field)))
}

// utf8Text takes n bytes of UTF-8 text for the string field that began at off.
func (d *Decoder) utf8Text(field string, off, n int) string {
	p := d.take(field, n)
	if p == nil {
		return ""
	}
	if !utf8.Valid(p) {
		d.fail(field, off, "not UTF-8")
		return ""
	}
	return string(p)
}

// Offset returns how many bytes have been read.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns how many bytes are left to decode.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	p := d.b[d.off:]
	d.off = len(d.b)
	return p
}

func (d *Decoder) family(field string) int {
	off := d.off
	switch f := d.U8(field); f {
	case 4:
		return 4
	case 6:
		return 16
	case 0:
		if d.err != nil {
			return 0
		}
		fallthrough
	default:
		d.fail(field, off, "family %d, want 4 or 6", f)
		return 0
	}
}

func (d *Decoder) addrBytes(field string, n int) netip.Addr {
	off := d.off
	p := d.take(field, n)
	if p == nil {
		return netip.Addr{}
	}
	if n == 4 {
		return netip.AddrFrom4([4]byte(p))
	}
	a := netip.AddrFrom16([16]byte(p))
	if a.Is4In6() {
		d.fail(field, off, "IPv4-mapped IPv6 address %v", a)
		return netip.Addr{}
	}
	return a
}

// Addr reads an address with its family byte.
func (d *Decoder) Addr(field string) netip.Addr {
	n := d.family(field)
	if n == 0 {
		return netip.Addr{}
	}
	return d.addrBytes(field, n)
}

// Prefix reads a normalised prefix: family, length, address.
func (d *Decoder) Prefix(field string) netip.Prefix {
	n := d.family(field)
	off := d.off
	bits := int(d.U8(field))
	if d.err != nil {
		return netip.Prefix{}
	}
	if bits > n*8 {
		d.fail(field, off, "prefix length %d over %d", bits, n*8)
		return netip.Prefix{}
	}
	a := d.addrBytes(field, n)
	if d.err != nil {
		return netip.Prefix{}
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		d.fail(field, off+1, "host bits set in %v", p)
		return netip.Prefix{}
	}
	return p
}

// Hello is the first frame a client sends.
type Hello struct {
	Version uint16
	Name    string // the client's name for logs, e.g. "rtm monitor"
}

// AppendHello appends a Hello frame.
func AppendHello(b []byte, h Hello) []byte {
	b, off := BeginFrame(b, THello)
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint16(b, h.Version)
	b = AppendString(b, h.Name)
	return EndFrame(b, off)
}

// DecodeHello decodes a Hello payload. It checks the magic but not the
// version, so that the server can say which versions it speaks.
func DecodeHello(p []byte) (Hello, error) {
	var d Decoder
	d.Reset(p)
	if m := d.take("magic", len(Magic)); d.err == nil && string(m) != Magic {
		return Hello{}, fmt.Errorf("bad magic %q: not an rtm client", m)
	}
	h := Hello{Version: d.U16("version")}
	off := d.off
	h.Name = d.String("name")
	if d.err == nil {
		if err := checkName(h.Name); err != nil {
			d.fail("name", off, "%v", err)
		}
	}
	return h, d.Finish()
}

// MaxNameLen is the longest client name a Hello may carry.
const MaxNameLen = 128

// CleanName makes name acceptable to checkName: unprintable characters
// become '?', and it is cut to MaxNameLen bytes at a character boundary.
func CleanName(name string) string {
	var b []byte
	for _, r := range name {
		if !unicode.IsPrint(r) {
			r = '?'
		}
		if len(b)+utf8.RuneLen(r) > MaxNameLen {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// checkName reports whether a client's name is short and printable: it
// goes into rtmd's logs and client list.
func checkName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("%d bytes, limit %d", len(name), MaxNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("unprintable character %U", r)
		}
	}
	return nil
}

// Changes decodes a Changes payload and calls fn for each record, in order.
func (d *Decoder) Changes(p []byte, fn func(Change)) error {
	d.Reset(p)
	seq := d.U64("first sequence")
	n := d.U32("count")
	for i := uint32(0); i < n && d.err == nil; i++ {
		off := d.off
		c := Change{Seq: seq + uint64(i), Op: d.U8("op")}
		switch c.Op {
		case OpAdd, OpChange:
			c.Route = d.Route()
		case OpDel:
			c.Route = d.Key()
		case OpMACAdd, OpMACChange:
			c.MAC = d.MAC("mac")
			c.Slot = d.U32("slot")
			c.IP = d.Addr("ip")
			c.Dev = d.Dev()
		case OpMACDel:
			c.MAC = d.MAC("mac")
		case OpFlush:
		default:
			d.fail("op", off, "unknown change op %d", c.Op)
		}
		if d.err == nil {
			fn(c)
		}
	}
	return d.Finish()
}

// History reads a history id.
func (d *Decoder) History(field string) (h [HistoryLen]byte) {
	if p := d.take(field, HistoryLen); p != nil {
		copy(h[:], p)
	}
	return h
}

// MAC reads a MAC address.
func (d *Decoder) MAC(field string) mac.Addr {
	p := d.take(field, 6)
	if p == nil {
		return mac.Addr{}
	}
	return mac.Addr(p)
}

// MACSeg decodes a MACSeg payload.
func (d *Decoder) MACSeg(p []byte) (MACSeg, error) {
	d.Reset(p)
	s := MACSeg{Gen: d.U32("generation"), Capacity: d.U32("capacity"), Name: d.String("name")}
	return s, d.Finish()
}

// MACSlots decodes a SnapMACs payload: a count and that many (MAC, slot,
// interface) entries.
func (d *Decoder) MACSlots(p []byte, fn func(m mac.Addr, slot uint32, dev string)) error {
	d.Reset(p)
	n := d.U32("count")
	for i := uint32(0); i < n && d.err == nil; i++ {
		m, slot, dev := d.MAC("mac"), d.U32("slot"), d.Dev()
		if d.err == nil {
			fn(m, slot, dev)
		}
	}
	return d.Finish()
}

// MACValue reads a MAC, an address and an interface name ("" for none), as
// a MAC request carries them.
func (d *Decoder) MACValue() (mac.Addr, netip.Addr, string) {
	m := d.MAC("mac")
	off := d.off
	a := d.Addr("ip")
	if d.err == nil && a.Zone() != "" {
		d.fail("ip", off, "zone")
	}
	return m, a, d.Dev()
}
