package projections

import (
	"context"

	"github.com/creditd/creditd/eventstore"
)

// Catch-up bounds: commits per transaction (big transactions amortise
// SQLite's commit; the bound keeps memory and a failed batch's redo small)
// and decoded batches waiting for the writer.
const (
	rebuildBatchCommitsMax = 256
	rebuildBatchesAhead    = 2
)

// LogReader reads the stream in order; *eventstore.Store satisfies it.
type LogReader interface {
	ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(eventstore.StoredMsg) error) error
	LastPosition(ctx context.Context) (uint64, error)
}

// CatchUp applies the log from the projection's checkpoint up to upTo (0:
// the stream's last position at the call) in large transactions. It is how
// `creditd rebuild` fills a fresh database, and how a projection far behind
// gets level before live consumption takes over. Reading and decoding run
// on one goroutine and the SQLite writes on another, so the two overlap on
// two cores.
func (p *Projector) CatchUp(ctx context.Context, log LogReader, upTo uint64) error {
	if upTo == 0 {
		last, err := log.LastPosition(ctx)
		if err != nil {
			return err
		}
		upTo = last
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []Decoded, rebuildBatchesAhead)
	readDone := make(chan error, 1)
	go func() {
		defer close(batches)
		var chunk []eventstore.StoredMsg
		send := func() error {
			decoded, err := Decode(chunk)
			chunk = chunk[:0]
			if err != nil {
				return err
			}
			select {
			case batches <- decoded:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := log.ReadAll(ctx, p.Position(), upTo, func(m eventstore.StoredMsg) error {
			chunk = append(chunk, m)
			if len(chunk) < rebuildBatchCommitsMax {
				return nil
			}
			return send()
		})
		if err == nil && len(chunk) > 0 {
			err = send()
		}
		readDone <- err
	}()
	var applyErr error
	for batch := range batches {
		if applyErr == nil {
			if applyErr = p.ApplyDecoded(ctx, batch); applyErr != nil {
				cancel()
			}
		}
	}
	readErr := <-readDone
	if applyErr != nil {
		return applyErr
	}
	return readErr
}
