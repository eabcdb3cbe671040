package projections

import (
	"context"

	"github.com/creditd/creditd/eventstore"
)

// rebuildBatchCommitsMax bounds the commits applied per transaction when
// catching up from the log directly: big transactions amortise SQLite's
// commit, and the bound keeps memory and a failed batch's redo small.
const rebuildBatchCommitsMax = 256

// LogReader reads the stream in order; *eventstore.Store satisfies it.
type LogReader interface {
	ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(eventstore.StoredMsg) error) error
	LastPosition(ctx context.Context) (uint64, error)
}

// CatchUp applies the log from the projection's checkpoint up to upTo (0:
// the stream's last position at the call) in large transactions. It is how
// `creditd rebuild` fills a fresh database, and how a projection far behind
// gets level before live consumption takes over.
func (p *Projector) CatchUp(ctx context.Context, log LogReader, upTo uint64) error {
	if upTo == 0 {
		last, err := log.LastPosition(ctx)
		if err != nil {
			return err
		}
		upTo = last
	}
	var chunk []eventstore.StoredMsg
	err := log.ReadAll(ctx, p.Position(), upTo, func(m eventstore.StoredMsg) error {
		chunk = append(chunk, m)
		if len(chunk) < rebuildBatchCommitsMax {
			return nil
		}
		err := p.Apply(ctx, chunk)
		chunk = chunk[:0]
		return err
	})
	if err != nil {
		return err
	}
	return p.Apply(ctx, chunk)
}
