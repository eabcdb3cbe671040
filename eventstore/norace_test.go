//go:build !race

package eventstore_test

const raceEnabled = false
