//go:build race

package idindex

// raceEnabled: the race detector is on; TestEveryBitFlipIsCaught flips
// fewer bytes.
const raceEnabled = true
