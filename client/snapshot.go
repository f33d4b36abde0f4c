package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rtm-project/rtm/internal/mac"
	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// Snapshot subscribes on c, calls fn for every route of rtmd's tables in
// `rtm route show table all` order, and returns the sequence number the
// tables are consistent at. The connection carries the subscription
// afterwards: close it when done.
//
// Routes with the same next hops share one NextHops slice: fn must not
// modify it, and must copy it to keep it.
func (c *Conn) Snapshot(ctx context.Context, fn func(Route)) (seq uint64, err error) {
	return c.snapshot(ctx, fn, nil, nil)
}

// MACSnapshot subscribes on c and returns rtmd's MAC table in `rtm mac
// show` order, each IP read from the shared segment, and the sequence
// number the table is consistent at. Close the connection when done.
func (c *Conn) MACSnapshot(ctx context.Context) ([]MACEntry, uint64, error) {
	var seg wire.MACSeg
	type ks struct {
		k    mac.Addr
		slot uint32
	}
	var keys []ks
	devs := make(map[mac.Addr]string)
	seq, err := c.snapshot(ctx, nil, func(s wire.MACSeg) { seg = s }, func(k mac.Addr, slot uint32, dev string) {
		keys = append(keys, ks{k, slot})
		if dev != "" {
			devs[k] = dev
		}
	})
	if err != nil {
		return nil, 0, err
	}
	v, err := c.openSegment(seg.Name)
	if err != nil {
		return nil, 0, err
	}
	defer v.Close()
	slices.SortFunc(keys, func(a, b ks) int { return mac.Compare(a.k, b.k) })
	out := make([]MACEntry, 0, len(keys))
	for _, e := range keys {
		// A record that no longer holds its key was deleted after the
		// snapshot; it is left out.
		if m, ip, ok := v.Read(int(e.slot)); ok && m == e.k {
			out = append(out, MACEntry{e.k, ip, devs[e.k]})
		}
	}
	return out, seq, nil
}

func (c *Conn) snapshot(ctx context.Context, routes func(Route), seg func(wire.MACSeg), macs func(mac.Addr, uint32, string)) (seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err = c.withContext(ctx, func() error {
		if _, err := c.nc.Write(wire.AppendRequest(nil, 0, wire.KSubscribe, nil)); err != nil {
			return err
		}
		var d wire.Decoder
		begun := false
		// The decoder shares next-hop lists between routes; so do the
		// routes passed to fn.
		var lastHops []route.NextHop
		var lastPublic []NextHop
		for {
			typ, p, err := c.r.ReadFrame()
			if err != nil {
				return err
			}
			if !begun && typ != wire.TSnapBegin && typ != wire.TError {
				return fmt.Errorf("protocol error: frame type %d before the snapshot", typ)
			}
			switch typ {
			case wire.TSnapBegin:
				d.Reset(p)
				seq = d.U64("sequence")
				begun = true
			case wire.TSnapshot:
				if err := d.Routes(p, func(r route.Route) {
					if routes == nil {
						return
					}
					hops := r.Hops
					if len(hops) > 0 && len(lastHops) == len(hops) && &lastHops[0] == &hops[0] {
						r.Hops = nil
						pr := publicRoute(&r)
						pr.NextHops = lastPublic
						routes(pr)
						return
					}
					pr := publicRoute(&r)
					lastHops, lastPublic = hops, pr.NextHops
					routes(pr)
				}); err != nil {
					return fmt.Errorf("bad snapshot frame: %w", err)
				}
			case wire.TMACSeg:
				s, err := d.MACSeg(p)
				if err != nil {
					return fmt.Errorf("bad MAC segment frame: %w", err)
				}
				if seg != nil {
					seg(s)
				}
			case wire.TSnapMACs:
				if err := d.MACSlots(p, func(k mac.Addr, slot uint32, dev string) {
					if macs != nil {
						macs(k, slot, dev)
					}
				}); err != nil {
					return fmt.Errorf("bad snapshot MACs: %w", err)
				}
			case wire.TSynced:
				return nil
			case wire.TError:
				return serverError(wire.StatusError, p)
			case wire.TChanges:
				return errors.New("protocol error: changes before the snapshot")
			default:
				return fmt.Errorf("protocol error: unexpected frame type %d", typ)
			}
		}
	})
	return seq, err
}
