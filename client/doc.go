// Package client is the Go client library of rtm: it talks to rtmd over its
// Unix socket to change the routing tables, and keeps a local copy of them
// in sync for programs that need fast lookups.
//
// # Requests
//
// A Route is a route as `ip route` has it (docs/routes.md): a table and a
// prefix, a type, a protocol, a metric, a preferred source and up to 32
// next hops; ParseRoute reads one as `ip route show` prints it.
//
// Dial returns a Conn; Add, Change, Replace, Delete, DeleteMatching,
// FlushRoutes and Load change rtmd's tables with iproute2's meanings, Get
// asks rtmd for the route a lookup in a table chooses, and Snapshot streams
// the whole tables once. Apply sends a list of Changes as one request. Each
// change returns the sequence number rtmd applied it at, so that a caller
// can wait until a Mirror has it (Mirror.WaitSeq): read your writes. Errors
// a caller branches on are ErrExists, ErrNotFound and ErrPermission, for
// errors.Is. A Conn is safe for concurrent use; its requests are sent one
// at a time.
//
// # Mirrors
//
// A Mirror subscribes: rtmd sends it a snapshot consistent at a sequence
// number S, then every change after S, each with the next sequence number,
// with no gap and no duplicate. Mirror.Lookup is a longest-prefix match on
// the local copy; it never asks rtmd. When the connection fails, or rtmd
// finds the mirror too far behind and resends the table, the mirror
// resyncs by itself: a new snapshot is built aside and swapped in whole.
// Mirror.OnEvent sees every step, in order, for programs that keep their
// own state (rtm monitor prints them).
//
// # Sockets and trust
//
// DefaultSocket gives the path a client uses when none is given:
// $RTM_SOCKET, else SystemSocket (/run/rtm/rtm.sock) if it exists, else
// $XDG_RUNTIME_DIR/rtm.sock; DaemonSocket gives rtmd's. Neither falls back
// to a place anyone can write to.
//
// Before it sends anything on a Unix socket, Dial checks that the process
// serving it runs as root or as this process's effective uid (SO_PEERCRED);
// Dialer.TrustUIDs adds uids, and anything else fails with an
// *UntrustedPeerError. A TCP peer cannot be checked: use TCP only on a
// network you trust. Dialer.Timeout bounds connecting and the handshake.
package client
