package client

// DefaultSocketWith and DaemonSocketWith are DefaultSocket and DaemonSocket
// with the environment, the file system and the uid faked.
var (
	DefaultSocketWith = defaultSocket
	DaemonSocketWith  = daemonSocket
)
