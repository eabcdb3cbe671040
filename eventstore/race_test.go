//go:build race

package eventstore_test

// raceEnabled: the race detector is on, and slows the embedded server
// several times over; tests that read a lot read less.
const raceEnabled = true
