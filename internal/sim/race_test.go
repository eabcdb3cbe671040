//go:build race

package sim

// raceEnabled: the race detector is on; TestSimulation runs fewer seeds.
const raceEnabled = true
