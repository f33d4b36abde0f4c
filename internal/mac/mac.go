// Package mac defines the MAC address key of rtm's neighbour table.
package mac

import (
	"fmt"
)

// Addr is a 48-bit MAC address. The zero value is 00:00:00:00:00:00.
type Addr [6]byte

// Parse parses six hex pairs separated by colons, in either case.
func Parse(s string) (Addr, error) {
	var a Addr
	if len(s) != 17 {
		return a, fmt.Errorf("invalid mac %q: want six hex pairs like 02:00:5e:10:00:01", s)
	}
	for i := range 6 {
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 || (i < 5 && s[3*i+2] != ':') {
			return Addr{}, fmt.Errorf("invalid mac %q: want six hex pairs like 02:00:5e:10:00:01", s)
		}
		a[i] = hi<<4 | lo
	}
	return a, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the address in lower-case colon form.
func (a Addr) String() string { return string(a.AppendTo(make([]byte, 0, 17))) }

// AppendTo appends the lower-case colon form of a to b.
func (a Addr) AppendTo(b []byte) []byte {
	const digits = "0123456789abcdef"
	for i, x := range a {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[x>>4], digits[x&15])
	}
	return b
}

// Compare orders addresses bytewise: the order of `rtm mac show`.
func Compare(a, b Addr) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}
