// Package itest holds rtm's integration tests: they build rtmd and rtm, run
// them as real processes over real sockets in a temporary directory, and
// check what every process ends up with.
//
// # Hermetic
//
// The tests share the host with other rtmds, rtm benches and test runs, so
// they look only at what they started:
//   - every rtmd gets a socket in a fresh directory (startRtmd, shortDir);
//     its queue and shared memory names derive from that path, and its
//     leftovers are looked for under those names only (leftovers);
//   - commands get the socket explicitly (-s, RTM_SOCKET for helpers),
//     never a default that could reach another rtmd; TCP listens on port 0;
//   - `rtm bench` runs with its own TMPDIR under a reaper helper that is the
//     child subreaper of everything the bench starts, and reports what it
//     makes with -created: the tests check those names and the reaper's
//     children, not the host's process list, /tmp or /dev/shm;
//   - one rtmd at a time where possible: every rtmd of the user holds a
//     message queue from the per-uid budget (RLIMIT_MSGQUEUE).
//
// Tests wait for events (a line, a sequence number, a process exit), not
// for time to pass. Race-built children skip the race runtime's one-second
// sleep at exit (GORACE atexit_sleep_ms=0); a race still makes them exit 66.
package itest
