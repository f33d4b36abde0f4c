//go:build race

package itest_test

const raceEnabled = true
