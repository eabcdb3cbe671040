//go:build race

package client

// raceEnabled: the race detector is on, and its instrumentation allocates:
// allocation counts are not checked then.
const raceEnabled = true
