package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// EventSummary is one line of a listing: enough to pick an event to show
// or replay, without its body. Its status, attempts and last outcome are
// the event's over all its deliveries (the status is the roll-up, see
// store.Rollup), or, in a listing filtered by destination, that
// destination's delivery's.
type EventSummary struct {
	// Source and ID are the event's key, what show and replay take.
	Source   string `json:"source"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Type is the canonical event type, prefix included.
	Type string `json:"type"`
	// Subject is the canonical event's subject, when it has one.
	Subject    string       `json:"subject,omitempty"`
	Status     store.Status `json:"status"`
	ReceivedAt time.Time    `json:"received_at"`
	// Attempts counts delivery attempts, replays included.
	Attempts int `json:"attempts"`
	Replays  int `json:"replays,omitempty"`
	// NextAttemptAt is set while a retry is scheduled (the earliest of the
	// deliveries').
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// LastStatus and LastError are from the latest attempt: what an
	// operator looks at first for a dead or retrying event.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// DeadReason says why a dead delivery gets no further attempt (gone,
	// attempts_exhausted, max_age): the first dead delivery's.
	DeadReason store.DeadReason `json:"dead_reason,omitempty"`
	// Deliveries are the event's deliveries, one per destination, in the
	// order the route names its destinations; none for an unmatched event.
	Deliveries []DeliverySummary `json:"deliveries"`
}

// DeliverySummary is one delivery of an event, as a listing and an event's
// page show it.
type DeliverySummary struct {
	// Destination is the destination the delivery is bound to, which a
	// replay sends it to unless another is named.
	Destination string       `json:"destination"`
	Status      store.Status `json:"status"`
	// Attempts counts its attempts, replays included.
	Attempts int `json:"attempts"`
	Replays  int `json:"replays,omitempty"`
	// NextAttemptAt is set while a retry is scheduled.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	// DeadReason says why a dead delivery gets no further attempt.
	DeadReason store.DeadReason `json:"dead_reason,omitempty"`
	// Lane and Sequence place a delivery of an ordered destination in its
	// lane; a dead one with a lane parks it.
	Lane     string `json:"lane,omitempty"`
	Sequence uint64 `json:"sequence,omitempty"`
	// Parked is true for a dead delivery with a lane: nothing behind it in
	// its lane is delivered until it is replayed to delivered or skipped.
	Parked bool `json:"parked,omitempty"`
}

// SummarizeDelivery is the summary of one delivery.
func SummarizeDelivery(d *store.Delivery) DeliverySummary {
	s := DeliverySummary{
		Destination: d.Destination,
		Status:      d.Status,
		Attempts:    len(d.Attempts),
		Replays:     d.Replays,
		DeadReason:  d.DeadReason,
		Lane:        d.Lane,
		Sequence:    d.Sequence,
		Parked:      d.Status == store.StatusDead && d.Lane != "",
	}
	if !d.NextAttemptAt.IsZero() && d.Claimable() {
		t := d.NextAttemptAt
		s.NextAttemptAt = &t
	}
	if n := len(d.Attempts); n > 0 {
		s.LastStatus = d.Attempts[n-1].Status
		s.LastError = d.Attempts[n-1].Error
	}
	return s
}

// ListResponse is one page of a listing.
type ListResponse struct {
	// Store is the store listed.
	Store string `json:"store"`
	// Events are newest first.
	Events []EventSummary `json:"events"`
	// NextCursor continues the listing (cursor=...); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// EventView is one stored event: the record (with the canonical event, the
// provider's headers minus secrets, and the attempts) and the raw request
// body it came in.
type EventView struct {
	*store.Record
	// RawBody is the provider's request body when it is UTF-8 text (always,
	// for the JSON providers send); for a batch it is the whole batch.
	RawBody string `json:"raw_body,omitempty"`
	// RawBodyBase64 carries a body that is not valid UTF-8.
	RawBodyBase64 string `json:"raw_body_base64,omitempty"`
}

// CountsResponse is the number of events per status.
type CountsResponse struct {
	// Store is the store counted.
	Store string `json:"store"`
	// Counts has every status, zero or not.
	Counts map[store.Status]int `json:"counts"`
	Total  int                  `json:"total"`
}

// Summarize is the listing line of a record.
func Summarize(rec *store.Record) EventSummary { return SummarizeFor(rec, "") }

// SummarizeFor is the listing line of a record in a listing filtered by
// destination: status, attempts and last outcome are that delivery's (the
// event's own when destination is empty or the record has no delivery
// there).
func SummarizeFor(rec *store.Record, destination string) EventSummary {
	s := EventSummary{
		Source:     rec.Source,
		ID:         rec.ID,
		Provider:   rec.Provider,
		Type:       rec.Type,
		Subject:    subject(rec),
		Status:     rec.Status,
		ReceivedAt: rec.ReceivedAt,
		Deliveries: make([]DeliverySummary, 0, len(rec.Deliveries)),
	}
	var last *store.Attempt
	for i := range rec.Deliveries {
		d := &rec.Deliveries[i]
		ds := SummarizeDelivery(d)
		s.Deliveries = append(s.Deliveries, ds)
		if destination != "" && d.Destination != destination {
			continue
		}
		s.Attempts += ds.Attempts
		s.Replays += ds.Replays
		if s.DeadReason == "" {
			s.DeadReason = d.DeadReason
		}
		if ds.NextAttemptAt != nil && (s.NextAttemptAt == nil || ds.NextAttemptAt.Before(*s.NextAttemptAt)) {
			s.NextAttemptAt = ds.NextAttemptAt
		}
		for j := range d.Attempts {
			if a := &d.Attempts[j]; last == nil || !a.At.Before(last.At) {
				last = a
			}
		}
		if destination != "" {
			s.Status = d.Status
		}
	}
	if last != nil {
		s.LastStatus, s.LastError = last.Status, last.Error
	}
	return s
}

// subject is the record's subject, else (a record stored before records
// kept it) the canonical event's; a listing without it is still a
// listing, so an event that does not decode just has none.
func subject(rec *store.Record) string {
	if rec.Subject != "" {
		return rec.Subject
	}
	var ev struct {
		Subject string `json:"subject"`
	}
	if len(rec.Event) == 0 || json.Unmarshal(rec.Event, &ev) != nil {
		return ""
	}
	return ev.Subject
}

// List returns one page of the events matching f, newest first.
func List(ctx context.Context, t Target, f store.Filter) (*ListResponse, error) {
	recs, next, err := t.Store.List(ctx, f)
	if err != nil {
		// A cursor the store cannot decode is the caller's mistake,
		// anything else is ours.
		if errors.Is(err, store.ErrInvalidCursor) {
			return nil, Mark(ErrInvalid, err)
		}
		return nil, fmt.Errorf("listing events in %s: %w", t.Name, err)
	}
	out := &ListResponse{Store: t.Name, Events: make([]EventSummary, 0, len(recs)), NextCursor: next}
	for _, rec := range recs {
		out.Events = append(out.Events, SummarizeFor(rec, f.Destination))
	}
	return out, nil
}

// Show returns one event with its raw body.
func Show(ctx context.Context, t Target, source, id string) (*EventView, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("both source and id are required, e.g. ?source=/usaepay&id=<event id>"))
	}
	rec, err := t.Store.Get(ctx, source, id)
	if err != nil {
		return nil, eventError(err, t.Name, source, id)
	}
	view := &EventView{Record: rec}
	body, err := t.Store.RawBody(ctx, source, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A concurrent purge can remove both between the two reads:
		// show what was found.
	case err != nil:
		return nil, fmt.Errorf("reading raw body of %s %s: %w", source, id, err)
	case utf8.Valid(body):
		view.RawBody = string(body)
	default:
		view.RawBodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return view, nil
}

// Find looks an event id up in each of sources: the store is keyed by
// source and id, so an id alone is one lookup per source.
func Find(ctx context.Context, t Target, sources []string, id string) ([]EventSummary, error) {
	var out []EventSummary
	for _, s := range sources {
		rec, err := t.Store.Get(ctx, s, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("looking up %s %s in %s: %w", s, id, t.Name, err)
		}
		out = append(out, Summarize(rec))
	}
	return out, nil
}

// Counts counts the events per status exactly (a scan of the listing
// index) rather than using the metrics' cached counts: an operator asking
// wants the current numbers.
func Counts(ctx context.Context, t Target) (*CountsResponse, error) {
	counts, err := t.Store.Counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting events in %s: %w", t.Name, err)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return &CountsResponse{Store: t.Name, Counts: counts, Total: total}, nil
}

func eventError(err error, name, source, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return Mark(ErrNotFound, fmt.Errorf("no event %s %s in %s", source, id, name))
	}
	return fmt.Errorf("reading event %s %s from %s: %w", source, id, name, err)
}

// SourceCount is how many of the events scanned a source has, per status.
type SourceCount struct {
	Source string
	Counts map[store.Status]int
	Total  int
}

// CountBySource counts the newest events, at most max of them, per source
// and status, sorted by source. The store counts only by status, so this
// walks the listing; complete is false when max stopped it before the
// oldest event.
func CountBySource(ctx context.Context, t Target, max int) (rows []SourceCount, scanned int, complete bool, err error) {
	bySource := map[string]*SourceCount{}
	page := store.Filter{Limit: min(max, store.MaxListLimit)}
	for scanned < max {
		recs, cursor, err := t.Store.List(ctx, page)
		if err != nil {
			return nil, 0, false, fmt.Errorf("counting events by source in %s: %w", t.Name, err)
		}
		take := min(len(recs), max-scanned)
		for _, rec := range recs[:take] {
			sc := bySource[rec.Source]
			if sc == nil {
				sc = &SourceCount{Source: rec.Source, Counts: map[store.Status]int{}}
				bySource[rec.Source] = sc
			}
			sc.Counts[rec.Status]++
			sc.Total++
		}
		scanned += take
		if take == len(recs) && cursor == "" {
			complete = true
			break
		}
		page.Cursor = cursor
	}
	for _, sc := range bySource {
		rows = append(rows, *sc)
	}
	slices.SortFunc(rows, func(a, b SourceCount) int { return strings.Compare(a.Source, b.Source) })
	return rows, scanned, complete, nil
}

// DeadReasonText says in words why a dead delivery gets no further attempt,
// for the CLI's and the console's readers; an unknown reason (from a newer
// store) is shown as it is.
func DeadReasonText(r store.DeadReason) string {
	switch r {
	case store.DeadGone:
		return "the backend answered 410 Gone"
	case store.DeadAttemptsExhausted:
		return "every attempt failed (the destination's retry attempts are spent)"
	case store.DeadMaxAge:
		return "the next retry would have come after the destination's retry max_age"
	case "":
		return ""
	}
	return string(r)
}
