package audit

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// ExportedEvent is one line of an NDJSON events export: the event as
// stored, where and when it was recorded.
type ExportedEvent struct {
	Position   uint64          `json:"position"`
	RecordedAt time.Time       `json:"recorded_at"`
	Event      domain.Envelope `json:"event"`
}

// Formats of an export.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// ExportEvents writes a tenant's events (and its registry events) recorded
// in [from, to] (zero: open) in position order.
func ExportEvents(ctx context.Context, log Log, tenantID int64, from, to time.Time, format string, w io.Writer) error {
	var events []ExportedEvent
	collect := func(m eventstore.StoredMsg) error {
		c, err := eventstore.DecodeCommit(m.Data)
		if err != nil {
			return fmt.Errorf("position %d: %w", m.Sequence, err)
		}
		if (!from.IsZero() && c.RecordedAt.Before(from)) || (!to.IsZero() && c.RecordedAt.After(to)) {
			return nil
		}
		for _, env := range c.Events {
			if env.TenantID == tenantID {
				events = append(events, ExportedEvent{Position: m.Sequence, RecordedAt: c.RecordedAt, Event: env})
			}
		}
		return nil
	}
	if err := log.ReadSubject(ctx, eventstore.RegistrySubject, 0, collect); err != nil {
		return err
	}
	if err := log.ReadSubject(ctx, eventstore.PartitionSubject(log.PartitionOf(tenantID)), 0, collect); err != nil {
		return err
	}
	sortByPosition(events)
	switch format {
	case FormatNDJSON:
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return bw.Flush()
	case FormatCSV:
		cw := csv.NewWriter(w)
		cw.Write([]string{"position", "recorded_at", "type", "tenant_id", "credit_type", "data"})
		for _, e := range events {
			data, err := json.Marshal(e.Event.Event)
			if err != nil {
				return err
			}
			cw.Write([]string{strconv.FormatUint(e.Position, 10), e.RecordedAt.Format(time.RFC3339Nano), string(e.Event.Event.EventType()),
				strconv.FormatInt(e.Event.TenantID, 10), e.Event.CreditType, string(data)})
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("unknown format %q: ndjson or csv", format)
}

func sortByPosition(events []ExportedEvent) {
	// Two subjects were read one after the other; a stable merge by
	// position keeps each commit's events in their order.
	for i := 1; i < len(events); i++ {
		for j := i; j > 0 && events[j].Position < events[j-1].Position; j-- {
			events[j], events[j-1] = events[j-1], events[j]
		}
	}
}

// ExportRows writes the rows of a read-model query (the tenant's ledger or
// usage) as NDJSON objects or CSV with a header.
func ExportRows(ctx context.Context, db *sql.DB, query string, args []any, format string, w io.Writer) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var cw *csv.Writer
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	switch format {
	case FormatCSV:
		cw = csv.NewWriter(bw)
		cw.Write(cols)
	case FormatNDJSON:
	default:
		return fmt.Errorf("unknown format %q: ndjson or csv", format)
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if cw != nil {
			record := make([]string, len(cols))
			for i, v := range values {
				record[i] = text(v)
			}
			cw.Write(record)
			continue
		}
		obj := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := values[i].([]byte); ok {
				obj[c] = string(b)
			} else {
				obj[c] = values[i]
			}
		}
		if err := enc.Encode(obj); err != nil {
			return err
		}
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return bw.Flush()
}

func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// Appender appends commits; *eventstore.Store satisfies it.
type Appender interface {
	Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error)
	LastPosition(ctx context.Context) (uint64, error)
	PartitionOf(tenantID int64) int
}

// ErrNotEmpty: import needs a log with no history.
var ErrNotEmpty = errors.New("import needs an empty event log")

// Import appends an NDJSON events export to an empty log: the events of
// each original commit form one new commit on the subject creditd would
// have written them to, chained as creditd chains them. It returns the
// number of events imported.
func Import(ctx context.Context, store Appender, r io.Reader) (int, error) {
	if last, err := store.LastPosition(ctx); err != nil {
		return 0, err
	} else if last > 0 {
		return 0, ErrNotEmpty
	}
	type tip struct {
		seq  uint64
		hash string
	}
	tips := map[string]*tip{}
	var group []domain.Envelope
	var groupAt time.Time
	groupPosition := uint64(0)
	imported := 0
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		byLine := map[string][]domain.Envelope{}
		var subjects []string
		for _, env := range group {
			subject := eventstore.RegistrySubject
			if env.CreditType != "" {
				subject = eventstore.PartitionSubject(store.PartitionOf(env.TenantID))
			}
			if _, ok := byLine[subject]; !ok {
				subjects = append(subjects, subject)
			}
			byLine[subject] = append(byLine[subject], env)
		}
		for _, subject := range subjects {
			t := tips[subject]
			if t == nil {
				t = &tip{}
				tips[subject] = t
			}
			data, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: groupAt, Prev: t.hash, Events: byLine[subject]})
			if err != nil {
				return err
			}
			seq, err := store.Append(ctx, subject, t.seq, data)
			if err != nil {
				return err
			}
			t.seq, t.hash = seq, eventstore.Hash(data)
		}
		imported += len(group)
		group = group[:0]
		return nil
	}
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64<<10), eventstore.MaxPayloadBytes)
	line := 0
	for scanner.Scan() {
		line++
		if len(scanner.Bytes()) == 0 {
			continue
		}
		var e ExportedEvent
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			return imported, fmt.Errorf("line %d: %w", line, err)
		}
		if e.Position != groupPosition {
			if err := flush(); err != nil {
				return imported, err
			}
			groupPosition, groupAt = e.Position, e.RecordedAt
		}
		group = append(group, e.Event)
	}
	if err := scanner.Err(); err != nil {
		return imported, err
	}
	return imported, flush()
}
