//go:build !race

package itest_test

const raceEnabled = false
