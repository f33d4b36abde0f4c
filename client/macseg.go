package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/rtm-project/rtm/internal/shm"
	"github.com/rtm-project/rtm/internal/wire"
)

// ErrNoMAC is returned by GetMAC for a MAC that has no entry; it is also
// ErrNotFound for errors.Is.
var ErrNoMAC = fmt.Errorf("no entry for that MAC: %w", ErrNotFound)

// segmentOwners returns the uids whose objects may be the MAC segment that
// rtmd on c names: rtmd's own, known from the Unix socket. Over TCP, where
// rtmd's uid is unknown, root's and this process's.
func (c *Conn) segmentOwners() []uint32 {
	if _, ok := c.nc.(*net.UnixConn); ok {
		return []uint32{c.peerUID}
	}
	return []uint32{0, uint32(os.Geteuid())}
}

// openSegment maps the MAC segment that rtmd on c named, once shm.Open has
// checked that rtmd made it.
func (c *Conn) openSegment(name string) (*shm.View, error) {
	v, err := shm.Open(name, c.segmentOwners()...)
	if err != nil {
		return nil, fmt.Errorf("MAC table: %w", err)
	}
	return v, nil
}

// macSegment asks rtmd which generation of the MAC segment is current.
func (c *Conn) macSegment(ctx context.Context) (wire.MACSeg, error) {
	_, body, err := c.simple(ctx, wire.KMACSeg, func(b []byte) []byte { return b })
	if err != nil {
		return wire.MACSeg{}, err
	}
	var d wire.Decoder
	seg, err := d.MACSeg(body)
	if err != nil {
		return wire.MACSeg{}, fmt.Errorf("bad MAC segment reply: %w", err)
	}
	return seg, nil
}

// GetMAC returns the IP of MAC m, or ErrNoMAC. It asks rtmd for the name of
// its current MAC segment and reads the value from shared memory itself,
// as LookupMAC does, but without a subscription: it scans the segment's
// records, so it suits a one-off query, not a hot path.
func (c *Conn) GetMAC(ctx context.Context, m MAC) (netip.Addr, error) {
	for try := 0; ; try++ {
		seg, err := c.macSegment(ctx)
		if err != nil {
			return netip.Addr{}, err
		}
		v, err := c.openSegment(seg.Name)
		if errors.Is(err, os.ErrNotExist) && try == 0 {
			continue // rtmd moved to a new generation in between
		}
		if err != nil {
			return netip.Addr{}, err
		}
		ip, found, err := v.Find(m)
		v.Close()
		switch {
		case err != nil:
			return netip.Addr{}, fmt.Errorf("MAC table: %w", err)
		case !found:
			return netip.Addr{}, ErrNoMAC
		}
		return ip, nil
	}
}
