package sim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Seed budgets: CI runs `go test -race -count=1 ./...` on two cores and
// must finish the simulation within about two minutes.
const (
	seedsDefault = 200
	// seedsRace: the race detector slows a seed about threefold (200 seeds
	// take 21 s on two cores, 80 take 28 s with -race).
	seedsRace  = 80
	seedsShort = 20
)

// TestSimulation plays seeds 1..CREDITD_SIM_SEEDS (from CREDITD_SIM_FIRST
// when set) against the real engine and the reference model (doc.go).
// CREDITD_SIM_SEED=<n> plays seed n alone;
// CREDITD_SIM_WITHOUT=<features> leaves features out (generator.go);
// CREDITD_SIM_KEEP_GOING=1 plays every step of a failing seed (to time it);
// CREDITD_SIM_TRACE=1 prints every step with both answers.
func TestSimulation(t *testing.T) {
	seeds, err := seedsToRun()
	if err != nil {
		t.Fatal(err)
	}
	without, err := ParseWithout(os.Getenv("CREDITD_SIM_WITHOUT"))
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range seeds {
		// Parallel subtests: as many seeds at once as -parallel allows
		// (GOMAXPROCS by default), each on its own embedded server.
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			cfg := Config{Seed: seed, Without: without, KeepGoing: os.Getenv("CREDITD_SIM_KEEP_GOING") != ""}
			if os.Getenv("CREDITD_SIM_TRACE") != "" {
				cfg.Trace = os.Stderr
			}
			if f := Run(t.Context(), t.TempDir(), cfg); f != nil {
				t.Fatal(f)
			}
		})
	}
}

func seedsToRun() ([]uint64, error) {
	if s := os.Getenv("CREDITD_SIM_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("CREDITD_SIM_SEED=%q: %w", s, err)
		}
		return []uint64{seed}, nil
	}
	n := seedsDefault
	switch {
	case testing.Short():
		n = seedsShort
	case raceEnabled:
		n = seedsRace
	}
	if s := os.Getenv("CREDITD_SIM_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			return nil, fmt.Errorf("CREDITD_SIM_SEEDS=%q: want a positive count", s)
		}
	}
	// CREDITD_SIM_FIRST starts the run at another seed, so a long run can
	// be split into chunks (seeds FIRST..FIRST+SEEDS-1).
	first := uint64(1)
	if s := os.Getenv("CREDITD_SIM_FIRST"); s != "" {
		f, err := strconv.ParseUint(s, 10, 64)
		if err != nil || f < 1 {
			return nil, fmt.Errorf("CREDITD_SIM_FIRST=%q: want a seed from 1", s)
		}
		first = f
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = first + uint64(i)
	}
	return seeds, nil
}
