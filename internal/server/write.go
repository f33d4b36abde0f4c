package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtm-project/rtm/internal/wire"
)

func (c *conn) write() {
	var bufs net.Buffers
	var rw wire.RouteWriter
	rw.Typ = wire.TSnapshot
	var last uint64
	var cst *compatState
	if c.input == inCompat {
		cst = newCompatState(c.layout)
		defer func() {
			if c.sigfd >= 0 {
				unix.Close(c.sigfd)
			}
		}()
	}
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			items := c.queue
			c.queue = nil
			c.queued = 0
			askResync := len(items) == 0 && c.resync && !c.resyncAsked
			if askResync {
				c.resyncAsked = true
			}
			c.mu.Unlock()
			if askResync {
				select {
				case c.s.events <- evResync{c}:
				case <-c.done:
					return
				}
			}
			if len(items) == 0 {
				break
			}
			if c.input == inCompat {
				c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Limits.WriteTimeout))
				if err := c.writeCompat(cst, items); err != nil {
					return
				}
				for _, it := range items {
					last = max(last, it.seq)
				}
				if cst.deleted {
					c.deletedAt.Store(last)
					cst.deleted = false
				}
				c.delivered.Store(last)
				continue
			}
			replies := 0 // bytes, taken off the peer's unread count once written
			for _, it := range items {
				if it.seq > last {
					last = it.seq
				}
				if it.view == nil {
					if it.b != nil {
						bufs = append(bufs, it.b)
						replies += it.size
					}
					bufs = append(bufs, it.bufs...)
					continue
				}
				if err := c.flush(&bufs); err != nil {
					return
				}
				// The whole snapshot gets one deadline: a peer that
				// stops reading in the middle must not pin its view.
				c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Limits.WriteTimeout))
				if err := c.writeSnapshot(&rw, it); err != nil {
					return
				}
			}
			if err := c.flush(&bufs); err != nil {
				return
			}
			c.delivered.Store(last)
			if replies > 0 {
				c.answered(0, replies)
			}
		}
	}
}

func (c *conn) flush(bufs *net.Buffers) error {
	if len(*bufs) == 0 {
		return nil
	}
	all := *bufs
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Limits.WriteTimeout))
	_, err := bufs.WriteTo(c.nc)
	clear(all)
	*bufs = all[:0]
	if err != nil {
		c.writeFailed(err)
	}
	return err
}

// writeFailed drops a client whose write failed. One that did not read
// within the write timeout is logged (rate-limited), and what it held, a
// snapshot's view perhaps, is handed back to the OS.
func (c *conn) writeFailed(err error) {
	select {
	case <-c.done:
		return // closed on purpose
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.close()
		c.s.rates.warn("write timeout", "dropping a client that did not read within the write timeout", "client", c, "timeout", c.s.cfg.Limits.WriteTimeout)
		c.s.freeMemorySoon()
		c.gone(fmt.Errorf("write: did not read within %v (-write-timeout)", c.s.cfg.Limits.WriteTimeout))
		return
	}
	// The peer has closed its end. What it sent before, a goodbye say, may
	// still be unread: the reader reads it and reports the end. A reader
	// that cannot (the peer shut down only its reading side) is cut off
	// after a moment.
	time.AfterFunc(time.Second, func() {
		c.close()
		c.gone(fmt.Errorf("write: %w", err))
	})
	c.s.freeMemorySoon() // it may have held a snapshot's view
}

// writeSnapshot encodes a view as SnapBegin, Snapshot frames of about
// 64 KiB and Synced, writing as it goes: the view is immutable, so the loop
// keeps changing the table meanwhile.
func (c *conn) writeSnapshot(rw *wire.RouteWriter, it item) error {
	if err := c.writeAll(wire.AppendSnapBegin(nil, it.seq, it.reason, uint64(it.view.Len()))); err != nil {
		return err
	}
	for r := range it.view.All() {
		rw.Add(r)
		if rw.Full() {
			if err := c.writeAll(rw.Flush()); err != nil {
				return err
			}
		}
	}
	// The MAC keys, with the segment their slots refer to.
	b := wire.AppendMACSeg(rw.Flush(), it.macs.seg)
	for len(it.macs.slots) > 0 {
		n := min(len(it.macs.slots), 6000)
		var off int
		b, off = wire.BeginFrame(b, wire.TSnapMACs)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		for _, ms := range it.macs.slots[:n] {
			b = append(b, ms.mac[:]...)
			b = binary.LittleEndian.AppendUint32(b, ms.slot)
			b = wire.AppendDev(b, ms.dev)
		}
		b = wire.EndFrame(b, off)
		if err := c.writeAll(b); err != nil {
			return err
		}
		b = b[:0]
		it.macs.slots = it.macs.slots[n:]
	}
	return c.writeAll(wire.AppendSynced(b, it.seq))
}

func (c *conn) writeAll(b []byte) error {
	if _, err := c.nc.Write(b); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}
