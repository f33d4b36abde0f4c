// Package client is the Go client library of rtm: it talks to rtmd over its
// Unix socket to change the routing table, and keeps a local copy of the
// table in sync for programs that need fast lookups.
//
// # Requests
//
// Dial returns a Conn; Add, Change, Replace, Delete and Load change rtmd's
// table with iproute2's meanings, Get asks rtmd for a longest-prefix match,
// and Snapshot streams the whole table once. A Conn is safe for concurrent
// use; its requests are sent one at a time.
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
// # Sockets
//
// DefaultSocket gives the path that rtmd and rtm use when none is given.
package client
