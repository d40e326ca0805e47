// Package ops is what an operator does with stored events: list, show,
// count, replay and purge. The admin API (and so the CLI) and the browser
// console are two front ends on these functions, so a filter, a replay or a
// purge means the same in both. It knows stores only through store.Store and
// replays only through Replayer, so it runs with any store engine and in
// tests without Caddy.
package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ReplayConcurrency bounds the replays of one bulk replay, so an operator's
// "replay everything" does not flood the backend.
const ReplayConcurrency = 8

// Replayer sends a stored event again; *delivery.Engine is one.
type Replayer interface {
	Replay(ctx context.Context, source, id string, dryRun bool) (*delivery.ReplayResult, error)
}

var _ Replayer = (*delivery.Engine)(nil)

// Target is one store as the operations see it.
type Target struct {
	// Name tells the store apart when several are loaded; it is what a
	// front end shows and what a request names the store by.
	Name  string
	Store store.Store
	// Sources are the sources of the routes loaded on this store, sorted.
	Sources []string
	// Replayer returns what replays events of source stored here, or an
	// error saying why nothing can (a sync route, no route at all).
	Replayer func(source string) (Replayer, error)
}

// Statuses are the delivery statuses in life-cycle order.
var Statuses = []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered, store.StatusDead}

// IsKnownStatus reports whether s is one of Statuses.
func IsKnownStatus(s store.Status) bool { return slices.Contains(Statuses, s) }

// Providers returns the provider names a filter may name: the normalize
// registry's, sorted.
func Providers() []string { return normalize.Providers() }

// EventSummary is one line of a listing: enough to pick an event to show
// or replay, without its body.
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
	// NextAttemptAt is set while a retry is scheduled.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// LastStatus and LastError are from the latest attempt: what an
	// operator looks at first for a dead or retrying event.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// DeadReason says why a dead event gets no further attempt (gone,
	// attempts_exhausted, max_age).
	DeadReason store.DeadReason `json:"dead_reason,omitempty"`
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

// FilterRequest selects events in a replay or purge request; empty fields
// match all. Times are RFC 3339.
type FilterRequest struct {
	// Source is a route's CloudEvents source, e.g. "/usaepay".
	Source string `json:"source,omitempty"`
	// Provider is one of Providers.
	Provider string `json:"provider,omitempty"`
	// Type is the canonical event type, prefix included.
	Type string `json:"type,omitempty"`
	// Status is reserved, pending, retrying, delivered or dead.
	Status string `json:"status,omitempty"`
	// From and To bound the receive time: From <= received_at < To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Limit caps how many events are replayed or purged; 0 means all that
	// match.
	Limit int `json:"limit,omitempty"`
}

// BulkReplayResponse is the outcome of a replay by filter.
type BulkReplayResponse struct {
	// Store is the store the events were read from.
	Store string `json:"store"`
	// DryRun is true when nothing was sent.
	DryRun bool `json:"dry_run,omitempty"`
	// Matched is how many stored events matched the filter.
	Matched int `json:"matched"`
	// Delivered counts replays the backend answered with a 2xx; on a dry
	// run it counts the events that would be sent.
	Delivered int `json:"delivered"`
	// Failed counts replays that got no 2xx or could not be made.
	Failed int `json:"failed"`
	// Skipped counts events whose source has no async route to replay
	// them with.
	Skipped int `json:"skipped"`
	// Results follow the listing order (newest first), one per matched
	// event; Error says why one was skipped or failed.
	Results []*delivery.ReplayResult `json:"results"`
}

// PurgeResponse is the outcome of a purge.
type PurgeResponse struct {
	// Store is the store purged.
	Store string `json:"store"`
	// Purged is how many events were deleted.
	Purged int `json:"purged"`
}

// Filter checks fr and turns it into a store filter (without its Limit).
func (fr *FilterRequest) Filter() (store.Filter, error) {
	f := store.Filter{Source: fr.Source, Provider: fr.Provider, Type: fr.Type}
	if fr.Status != "" {
		s := store.Status(fr.Status)
		if !IsKnownStatus(s) {
			return f, Mark(ErrInvalid, fmt.Errorf("status %q: want one of reserved, pending, retrying, delivered, dead", fr.Status))
		}
		f.Status = s
	}
	var err error
	if f.From, err = parseTime("from", fr.From); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", fr.To); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, Mark(ErrInvalid, fmt.Errorf("from %s is not before to %s", fr.From, fr.To))
	}
	return f, nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, Mark(ErrInvalid, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, v))
	}
	return t, nil
}

// QueryFilter reads a listing filter from query parameters: source,
// provider, type, status, from, to, cursor and limit.
func QueryFilter(q url.Values) (store.Filter, error) {
	fr := FilterRequest{
		Source:   q.Get("source"),
		Provider: q.Get("provider"),
		Type:     q.Get("type"),
		Status:   q.Get("status"),
		From:     q.Get("from"),
		To:       q.Get("to"),
	}
	f, err := fr.Filter()
	if err != nil {
		return f, err
	}
	if c := q.Get("cursor"); c != "" {
		// Cursors are base64url; rejecting anything else here gives a
		// clear 400 without depending on the store's error text.
		if _, err := base64.RawURLEncoding.DecodeString(c); err != nil {
			return f, Mark(ErrInvalid, fmt.Errorf("cursor %q is not a cursor from a previous listing", c))
		}
		f.Cursor = c
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return f, Mark(ErrInvalid, fmt.Errorf("limit %q: want a number from 1 to %d", l, store.MaxListLimit))
		}
		f.Limit = n
	}
	return f, nil
}

// ActionFilter checks the filter of a replay or purge and returns it with
// its limit (0: all). An empty filter selects every event, so it is refused
// unless all is set: a request that forgot its filter must not replay or
// delete everything by accident.
func ActionFilter(fr *FilterRequest, all bool) (store.Filter, int, error) {
	if fr == nil {
		fr = &FilterRequest{}
	}
	f, err := fr.Filter()
	if err != nil {
		return f, 0, err
	}
	if fr.Limit < 0 {
		return f, 0, Mark(ErrInvalid, fmt.Errorf("filter limit %d: want 0 (no limit) or more", fr.Limit))
	}
	if f == (store.Filter{}) && !all {
		return f, 0, Mark(ErrInvalid, errors.New(`empty filter: it would select every stored event; set "all": true to mean that`))
	}
	return f, fr.Limit, nil
}

// Summarize is the listing line of a record.
func Summarize(rec *store.Record) EventSummary {
	s := EventSummary{
		Source:     rec.Source,
		ID:         rec.ID,
		Provider:   rec.Provider,
		Type:       rec.Type,
		Subject:    subject(rec.Event),
		Status:     rec.Status,
		ReceivedAt: rec.ReceivedAt,
		Attempts:   len(rec.Attempts),
		Replays:    rec.Replays,
		DeadReason: rec.DeadReason,
	}
	if !rec.NextAttemptAt.IsZero() && (rec.Status == store.StatusPending || rec.Status == store.StatusRetrying) {
		t := rec.NextAttemptAt
		s.NextAttemptAt = &t
	}
	if n := len(rec.Attempts); n > 0 {
		s.LastStatus = rec.Attempts[n-1].Status
		s.LastError = rec.Attempts[n-1].Error
	}
	return s
}

// subject reads the canonical event's subject; a listing without it is
// still a listing, so an event that does not decode just has none.
func subject(event json.RawMessage) string {
	var ev struct {
		Subject string `json:"subject"`
	}
	if len(event) == 0 || json.Unmarshal(event, &ev) != nil {
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
		out.Events = append(out.Events, Summarize(rec))
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

// Replay sends one event again now (or with dryRun, says what it would
// send) through the engine of its source.
func Replay(ctx context.Context, t Target, source, id string, dryRun bool) (*delivery.ReplayResult, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("replay by id needs both source and id"))
	}
	if _, err := t.Store.Get(ctx, source, id); err != nil {
		return nil, eventError(err, t.Name, source, id)
	}
	r, err := Replayable(t, source)
	if err != nil {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, err)
	}
	res, err := r.Replay(ctx, source, id, dryRun)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, eventError(err, t.Name, source, id) // purged meanwhile
	case errors.Is(err, delivery.ErrReserved), errors.Is(err, delivery.ErrNotServed):
		return nil, Mark(ErrNotReplayable, err)
	}
	return res, err
}

// Replayable returns what replays events of source in t, or an
// ErrNotReplayable error saying why nothing can.
func Replayable(t Target, source string) (Replayer, error) {
	r, err := t.Replayer(source)
	if err != nil {
		return nil, Mark(ErrNotReplayable, err)
	}
	return r, nil
}

// ReplayMatching replays every event matching f (at most limit, 0: all)
// through the engine of its source, at most ReplayConcurrency at a time. A
// filter naming a source that cannot be replayed fails as a whole, up front,
// rather than skipping every event.
func ReplayMatching(ctx context.Context, t Target, f store.Filter, limit int, dryRun bool) (*BulkReplayResponse, error) {
	if f.Source != "" {
		if _, err := Replayable(t, f.Source); err != nil {
			return nil, err
		}
	}
	// Collect the keys before replaying: a replay changes statuses and
	// would shift a status-filtered listing under its own cursor.
	keys, err := Matching(ctx, t, f, limit)
	if err != nil {
		return nil, fmt.Errorf("listing events to replay: %w", err)
	}

	out := &BulkReplayResponse{Store: t.Name, DryRun: dryRun, Matched: len(keys), Results: make([]*delivery.ReplayResult, len(keys))}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, ReplayConcurrency)
	)
	for i, k := range keys {
		r, err := t.Replayer(k.Source)
		if err != nil {
			out.Results[i] = &delivery.ReplayResult{Source: k.Source, ID: k.ID, DryRun: dryRun, Error: err.Error()}
			out.Skipped++
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("bulk replay interrupted after %d of %d events: %w", i, len(keys), ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := r.Replay(ctx, k.Source, k.ID, dryRun)
			if res == nil {
				res = &delivery.ReplayResult{Source: k.Source, ID: k.ID, DryRun: dryRun}
			}
			if err != nil {
				res.Error = err.Error()
			}
			out.Results[i] = res
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				out.Failed++
			case dryRun, res.Attempt != nil && res.Attempt.Status >= 200 && res.Attempt.Status <= 299:
				out.Delivered++
			default:
				out.Failed++
			}
		})
	}
	wg.Wait()
	return out, nil
}

// ReplayPreview is what a replay by filter would do, as a confirmation step
// shows it before anything is sent: counts over every matching event, and
// the requests of the first few only. A preview of a million events holds
// one listing page and a few requests, not a million bodies.
type ReplayPreview struct {
	// Store is the store the events were read from.
	Store string `json:"store"`
	// Matched is how many stored events match the filter (at most its
	// limit).
	Matched int `json:"matched"`
	// Sendable counts the events a replay would send.
	Sendable int `json:"sendable"`
	// Skipped counts events whose source has no async route to replay
	// them with.
	Skipped int `json:"skipped"`
	// Failed counts events that could not be replayed now: a synchronous
	// delivery in flight, or, among the requests prepared, an error.
	Failed int `json:"failed"`
	// Requests are the dry runs of the first matching events, in listing
	// order (newest first); Error says why one is skipped or failed.
	Requests []*delivery.ReplayResult `json:"requests"`
}

// previewPage is how many records a preview reads from the store at once.
const previewPage = store.DefaultListLimit

// PreviewReplay says what ReplayMatching(ctx, t, f, limit, false) would
// do, sending nothing. It walks the listing a page at a time, counting, and
// prepares the request (a dry run) of the first shown events only. The
// counts are read from the listing, so an event whose status changes
// between the preview and the replay is counted as it was.
func PreviewReplay(ctx context.Context, t Target, f store.Filter, limit, shown int) (*ReplayPreview, error) {
	if f.Source != "" {
		if _, err := Replayable(t, f.Source); err != nil {
			return nil, err
		}
	}
	out := &ReplayPreview{Store: t.Name}
	type route struct {
		r   Replayer
		err error
	}
	routes := map[string]route{}
	page := f
	page.Cursor = ""
	page.Limit = previewPage
	for limit <= 0 || out.Matched < limit {
		recs, cursor, err := t.Store.List(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("listing events to replay in %s: %w", t.Name, err)
		}
		for _, rec := range recs {
			if limit > 0 && out.Matched == limit {
				break
			}
			out.Matched++
			rt, ok := routes[rec.Source]
			if !ok {
				rt.r, rt.err = t.Replayer(rec.Source)
				routes[rec.Source] = rt
			}
			var res *delivery.ReplayResult
			switch {
			case rt.err != nil:
				out.Skipped++
				res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true, Error: rt.err.Error()}
			case rec.Status == store.StatusReserved:
				out.Failed++
				res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true, Error: delivery.ErrReserved.Error()}
			case len(out.Requests) < shown:
				res, err = rt.r.Replay(ctx, rec.Source, rec.ID, true)
				if res == nil {
					res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true}
				}
				if err != nil {
					res.Error = err.Error()
					out.Failed++
				} else {
					out.Sendable++
				}
			default:
				out.Sendable++
			}
			if len(out.Requests) < shown {
				out.Requests = append(out.Requests, res)
			}
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}
	return out, nil
}

// Key names one stored event.
type Key struct{ Source, ID string }

// Matching returns the keys of the events matching f, newest first, at most
// limit of them (0: all), walking every page of the listing.
func Matching(ctx context.Context, t Target, f store.Filter, limit int) ([]Key, error) {
	var keys []Key
	page := f
	page.Cursor = ""
	page.Limit = store.MaxListLimit
	for limit <= 0 || len(keys) < limit {
		recs, cursor, err := t.Store.List(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("listing events in %s: %w", t.Name, err)
		}
		for _, rec := range recs {
			if limit > 0 && len(keys) == limit {
				break
			}
			keys = append(keys, Key{rec.Source, rec.ID})
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}
	return keys, nil
}

// Purge deletes the events matching f, at most limit of them (0: all).
func Purge(ctx context.Context, t Target, f store.Filter, limit int) (*PurgeResponse, error) {
	f.Cursor = ""
	f.Limit = limit
	n, err := t.Store.Purge(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("purged %d events from %s, then: %w", n, t.Name, err)
	}
	return &PurgeResponse{Store: t.Name, Purged: n}, nil
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
