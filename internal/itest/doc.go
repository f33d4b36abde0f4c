// Package itest holds rtm's integration tests: they build rtmd and rtm, run
// them as real processes over real sockets in a temporary directory, and
// check what every process ends up with.
package itest
