package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/command"
)

// macCommand runs the mac commands.
func (e *env) macCommand(ctx context.Context, cmd command.Command) error {
	switch cmd.Verb {
	case command.MACGet:
		return e.macGet(ctx, cmd)
	case command.MACLoad:
		return e.macLoad(ctx, cmd.File)
	}
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, done := e.request(ctx, 1)
	defer done()
	switch cmd.Verb {
	case command.MACAdd:
		return c.AddMAC(ctx, cmd.MAC, cmd.Addr)
	case command.MACChange:
		return c.ChangeMAC(ctx, cmd.MAC, cmd.Addr)
	case command.MACReplace:
		return c.ReplaceMAC(ctx, cmd.MAC, cmd.Addr)
	case command.MACDel:
		return c.DeleteMAC(ctx, cmd.MAC)
	case command.MACShow:
		entries, _, err := c.MACSnapshot(ctx)
		if err != nil {
			return err
		}
		e.printMACs(entries, cmd.JSON)
		return nil
	}
	return fmt.Errorf("%v: not implemented", cmd.Verb)
}

func (e *env) printMACs(entries []client.MACEntry, json bool) {
	b := make([]byte, 0, 64)
	if json {
		e.stdout.WriteString("[")
	}
	for i, m := range entries {
		b = b[:0]
		if json {
			if i > 0 {
				b = append(b, ',')
			}
			b = command.AppendMACJSON(append(b, "\n  "...), m.MAC, m.IP)
		} else {
			b = append(m.MAC.AppendTo(b), ' ')
			b = append(m.IP.AppendTo(b), '\n')
		}
		e.stdout.Write(b)
	}
	if json {
		if len(entries) > 0 {
			e.stdout.WriteString("\n")
		}
		e.stdout.WriteString("]\n")
	}
}

// macGet reads the IP from the shared segment itself: it asks rtmd which
// segment is current (no guessing of names in /dev/shm), checks that rtmd
// made it, and scans it.
func (e *env) macGet(ctx context.Context, cmd command.Command) error {
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ip, err := c.GetMAC(ctx, cmd.MAC)
	if errors.Is(err, client.ErrNoMAC) {
		return fmt.Errorf("no entry for mac %v", cmd.MAC)
	}
	if err != nil {
		return err
	}
	if cmd.JSON {
		e.stdout.Write(append(command.AppendMACJSON(nil, cmd.MAC, ip), '\n'))
	} else {
		fmt.Fprintln(e.stdout, ip)
	}
	return nil
}

// macLoad reads "MAC IP" lines, checks them all, and sends them as one
// batch.
func (e *env) macLoad(ctx context.Context, file string) error {
	data, name, err := e.readInput(file)
	if err != nil {
		return err
	}
	var entries []client.MACEntry
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		m, ip, err := command.ParseMACLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w (nothing loaded)", name, i+1, err)
		}
		entries = append(entries, client.MACEntry{MAC: m, IP: ip})
	}
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, done := e.request(ctx, loadScale(len(entries)))
	defer done()
	_, err = c.LoadMACs(ctx, entries)
	return err
}
