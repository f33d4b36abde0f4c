package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/rtm-project/rtm/internal/route"
	"github.com/rtm-project/rtm/internal/wire"
)

// Snapshot subscribes on c, calls fn for every route of rtmd's table in
// `rtm route show` order, and returns the sequence number the table is
// consistent at. The connection carries the subscription afterwards: close
// it when done.
func (c *Conn) Snapshot(ctx context.Context, fn func(Route)) (seq uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err = c.withContext(ctx, func() error {
		if _, err := c.nc.Write(wire.AppendRequest(nil, 0, wire.KSubscribe, nil)); err != nil {
			return err
		}
		var d wire.Decoder
		begun := false
		for {
			typ, p, err := c.r.ReadFrame()
			if err != nil {
				return err
			}
			switch typ {
			case wire.TSnapBegin:
				d.Reset(p)
				seq = d.U64("sequence")
				begun = true
			case wire.TSnapshot:
				if !begun {
					return errors.New("protocol error: snapshot routes before its start")
				}
				if err := d.Routes(p, func(r route.Route) { fn(r) }); err != nil {
					return fmt.Errorf("bad snapshot frame: %w", err)
				}
			case wire.TSynced:
				return nil
			case wire.TError:
				return serverError(p)
			case wire.TChanges:
				return errors.New("protocol error: changes before the snapshot")
			default:
				return fmt.Errorf("protocol error: unexpected frame type %d", typ)
			}
		}
	})
	return seq, err
}
