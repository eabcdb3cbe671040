// Package sim is creditd's deterministic simulation (issue 12): random
// operation sequences, one per seed, played against the real engine
// (commands.Engine on an embedded JetStream, with a simulated clock and
// injected store faults) and against a reference model of the rules of
// domain/README.md (model.go), compared after every step.
//
// # Running
//
//	go test ./internal/sim -run TestSimulation                   # seeds 1..200 (80 with -race, 20 with -short)
//	CREDITD_SIM_SEEDS=20000 go test ./internal/sim -run TestSimulation -timeout 0
//	CREDITD_SIM_SEED=17 go test ./internal/sim -run TestSimulation    # one seed, exactly as it failed
//	CREDITD_SIM_SEED=17 CREDITD_SIM_TRACE=1 go test ./internal/sim -run TestSimulation -v
//	CREDITD_SIM_WITHOUT=expiry,subscription go test ./internal/sim -run TestSimulation
//
// A seed's ops, clock and faults derive from the seed alone (PCG streams of
// math/rand/v2, no wall clock, no map order), and each seed runs on its own
// embedded server, so tenant ids and log positions are the same alone or in
// a batch:
// the failure message's reproduce line replays it exactly. CREDITD_SIM_WITHOUT
// leaves generator features out (generator.go lists them), to look past a
// failure every seed meets first; CREDITD_SIM_KEEP_GOING=1 plays a failing
// seed to its end, to time it.
//
// # Pieces
//
//   - model.go: the reference model. Each line keeps its list of facts;
//     every quantity (totals, each grant's remaining and pinned part, free,
//     spendable, arming) is recomputed from the list when needed. It imports
//     nothing of creditd.
//   - generator.go: the ops. Every kind of write, amounts of 0 to 200 with
//     up to two decimals, a clock that jumps to, 1 µs before and 1 µs after
//     every boundary the model knows (expiries, effective_at, hold ends,
//     period starts), exact repeats and same-id-other-body requests.
//   - driver.go: the ops on the real engine, retried with the same ids after
//     retryable errors, as a client does; the engine's answers and lines in
//     the model's terms. The sweeper never runs (a day's interval).
//   - faults.go: the store wrapper: an append that fails before storing, one
//     whose answer is lost, a second engine committing first on the subject
//     (a conflict), a crash (the engine is rebuilt from the log).
//   - sim.go: one seed: after each step the answers must be equal
//     (accepted, duplicate, refused with its reason; the amounts, the grants
//     that paid, the auto-reload) and the lines the step wrote on (every line
//     every 25 steps and after a restart) must be equal, with the invariants
//     holding on both. At the end the live projection, a rebuild from the log
//     and the audit's verification of both must agree with the model.
//
// # Where the rules leave a choice, the model takes this one
//
//   - Zero-amount usage is accepted and does nothing else: no auto-reload
//     (zeroUsageReloads in model.go turns the other reading on).
//   - A write refused without a recorded event (400, 404, 409) stores
//     nothing, its due work included. A line's state may equal the model's
//     with or without the due work at now, since either reading stores the
//     same facts later; only auto-reload arming could tell them apart.
//   - Auto-reload arming is judged before and after every fact at the fact's
//     instant. Re-sending the setting a line already has stores nothing; the
//     generator never does it.
//   - The idempotency fingerprint includes the line, as the engine's does: a
//     capture, release, void or cancel naming another line after one on the
//     right line is a conflict. A capture with another amount answers
//     "closed" (commands.Capture documents ErrReservationClosed).
//   - A capture or release of a reservation that was refused is not found.
//   - What a hold releases to a grant both voided and expired is voided.
//   - Voiding a grant whose credits are all pinned voids 0 and marks it
//     voided; "nothing left" (404) means remaining 0. A void counts in
//     adjusted. The generator never voids a grant already expired.
//   - A subscription started in the past first allocates the period holding
//     the creation instant; a period ending exactly then is over.
//   - Changing the expiry of a voided or used-up grant is not found (the
//     generator avoids it); a new expiry must be after now and after the
//     grant's effective_at.
//   - A reversal's answer lists every grant that paid (UsageReversed
//     returns to all of them; what a voided or expired grant gets back goes
//     at once, as its own event).
package sim
