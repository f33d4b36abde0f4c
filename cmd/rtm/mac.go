package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rtm-project/rtm/client"
	"github.com/rtm-project/rtm/internal/command"
)

// macCommand runs the mac commands that read the MAC table or load it;
// the changes are requests (env.do).
func (e *env) macCommand(ctx context.Context, cmd command.Command) error {
	switch cmd.Verb {
	case command.MACGet:
		return e.macGet(ctx, cmd)
	case command.MACLoad:
		return e.macLoad(ctx, cmd.File)
	}
	// The snapshot subscribes: a connection of its own.
	c, ctx, done, err := e.snapshotConn(ctx)
	if err != nil {
		return err
	}
	defer done()
	entries, _, err := c.MACSnapshot(ctx)
	if err != nil {
		return err
	}
	e.printMACs(entries, cmd.JSON)
	return nil
}

// printMACs prints MAC entries as "MAC IP [dev IF]" lines, which mac load
// reads back, or as a JSON array with the names of ip -j neigh.
func (e *env) printMACs(entries []client.MACEntry, json bool) {
	b := make([]byte, 0, 64)
	for i, m := range entries {
		b = b[:0]
		if json {
			if i == 0 {
				b = append(b, '[')
			} else {
				b = append(b, ',')
			}
			b = command.AppendMACJSON(b, m.MAC, m.IP, m.Dev)
		} else {
			b = append(command.AppendMACText(b, m.MAC, m.IP, m.Dev), '\n')
		}
		e.stdout.Write(b)
	}
	if json {
		if len(entries) == 0 {
			e.stdout.WriteString("[")
		}
		e.stdout.WriteString("]\n")
	}
}

// macGet reads the IP from the shared segment itself: it asks rtmd which
// segment is current (no guessing of names in /dev/shm), checks that rtmd
// made it, and scans it.
func (e *env) macGet(ctx context.Context, cmd command.Command) error {
	c, err := e.reqConn(ctx)
	if err != nil {
		return err
	}
	ctx, done := e.request(ctx, 1)
	defer done()
	ip, err := c.GetMAC(ctx, cmd.MAC)
	if errors.Is(err, client.ErrNoMAC) {
		return fmt.Errorf("no entry for mac %v", cmd.MAC)
	}
	if err != nil {
		return err
	}
	if cmd.JSON {
		e.stdout.Write(append(command.AppendMACJSON(nil, cmd.MAC, ip, ""), '\n'))
	} else {
		fmt.Fprintln(e.stdout, ip)
	}
	return nil
}

// macLoad reads "MAC IP [dev IF]" lines, checks them all, and sends them as one
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
		m, ip, dev, err := command.ParseMACLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w (nothing loaded)", name, i+1, err)
		}
		entries = append(entries, client.MACEntry{MAC: m, IP: ip, Dev: dev})
	}
	c, err := e.reqConn(ctx)
	if err != nil {
		return err
	}
	ctx, done := e.request(ctx, loadScale(len(entries)))
	defer done()
	_, _, err = c.LoadMACs(ctx, entries)
	return err
}
