package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Limits bound what peers can make rtmd hold. A zero field takes its
// default (the Default* constants); docs/security.md lists each with its
// flag.
type Limits struct {
	Conns           int           // Unix socket connections in all, of peers that may not change the tables
	ConnsPerUID     int           // Unix socket connections of one uid
	TCPConns        int           // TCP connections in all
	TCPConnsPerAddr int           // TCP connections from one IP address
	CompatConns     int           // compat socket connections in all
	StagedBytes     int64         // bytes of loads staged by all connections together
	WriteTimeout    time.Duration // for a client to take a snapshot, or one batch of its backlog
}

// Defaults for Limits.
const (
	DefaultConns           = 1024
	DefaultConnsPerUID     = 256
	DefaultTCPConns        = 256
	DefaultTCPConnsPerAddr = 16
	DefaultCompatConns     = 64
	DefaultStagedBytes     = 1 << 30
	DefaultWriteTimeout    = 30 * time.Second
)

func (l *Limits) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Conns, DefaultConns)
	def(&l.ConnsPerUID, DefaultConnsPerUID)
	def(&l.TCPConns, DefaultTCPConns)
	def(&l.TCPConnsPerAddr, DefaultTCPConnsPerAddr)
	def(&l.CompatConns, DefaultCompatConns)
	if l.StagedBytes <= 0 {
		l.StagedBytes = DefaultStagedBytes
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
}

// connLimit counts the connections of one listener, in all and per peer
// (a uid, or an IP address). The accept loop takes a slot before it starts
// a connection's goroutines; the connection gives it back when it closes.
type connLimit struct {
	total, perPeer int
	totalFlag      string // the flags that set them, for the refusal
	perPeerFlag    string

	mu     sync.Mutex
	n      int
	byPeer map[string]int
}

func newConnLimit(total, perPeer int, totalFlag, perPeerFlag string) *connLimit {
	return &connLimit{total: total, perPeer: perPeer, totalFlag: totalFlag, perPeerFlag: perPeerFlag, byPeer: make(map[string]int)}
}

// acquire takes a slot for peer, or says why there is none. A privileged
// peer (one that may change the tables) is held to its per-peer limit only,
// so that users who may only subscribe cannot lock it out by filling the
// total.
func (l *connLimit) acquire(peer string, privileged bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.n >= l.total && !privileged:
		return fmt.Errorf("too many connections (%d, %s)", l.total, l.totalFlag)
	case peer != "" && l.byPeer[peer] >= l.perPeer:
		return fmt.Errorf("too many connections from %s (%d, %s)", peer, l.perPeer, l.perPeerFlag)
	}
	l.n++
	if peer != "" {
		l.byPeer[peer]++
	}
	return nil
}

func (l *connLimit) release(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if peer == "" {
		return
	}
	if l.byPeer[peer]--; l.byPeer[peer] <= 0 {
		delete(l.byPeer, peer)
	}
}

// rateLog logs a line once per cause and interval, so that a flood of
// events a peer can cause (refusals, drops, protocol errors, clients coming
// and going) costs a line every few seconds, not a line each. Causes are a
// fixed set of words chosen by rtmd, never a peer's bytes, so the map stays
// small.
type rateLog struct {
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	causes map[string]*rateCount
}

type rateCount struct {
	last       time.Time
	suppressed int
}

func newRateLog(log *slog.Logger) *rateLog {
	return &rateLog{log: log, every: 10 * time.Second, causes: make(map[string]*rateCount)}
}

// warn logs a warning for cause; see logAt.
func (l *rateLog) warn(cause, msg string, args ...any) { l.logAt(slog.LevelWarn, cause, msg, args...) }

// info logs an informational line for cause; see logAt.
func (l *rateLog) info(cause, msg string, args ...any) { l.logAt(slog.LevelInfo, cause, msg, args...) }

// logAt logs msg for cause unless a line for cause went out less than
// every ago; then it only counts it, and the next line says how many
// were not logged.
func (l *rateLog) logAt(level slog.Level, cause, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	c := l.causes[cause]
	if c == nil {
		c = new(rateCount)
		l.causes[cause] = c
	}
	if !c.last.IsZero() && now.Sub(c.last) < l.every {
		c.suppressed++
		l.mu.Unlock()
		return
	}
	n := c.suppressed
	c.last, c.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "not_logged_since_last", n)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
