package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ReplayConcurrency bounds the replays of one bulk replay, so an operator's
// "replay everything" does not flood the backend.
const ReplayConcurrency = 8

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
	// Skipped counts events whose destination no loaded async route
	// delivers to.
	Skipped int `json:"skipped"`
	// Results follow the listing order (newest first), one per matched
	// event; Error says why one was skipped or failed.
	Results []*delivery.ReplayResult `json:"results"`
}

// Replay sends one event again now (or with dryRun, says what it would
// send) to destination, or when that is empty to the event's own
// destination, through the engine delivering to it.
func Replay(ctx context.Context, t Target, source, id, destination string, dryRun bool) (*delivery.ReplayResult, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("replay by id needs both source and id"))
	}
	rec, err := t.Store.Get(ctx, source, id)
	if err != nil {
		return nil, eventError(err, t.Name, source, id)
	}
	of, err := replayedDelivery(rec, destination)
	if err != nil {
		return nil, Mark(ErrInvalid, fmt.Errorf("replaying %s %s: %w", source, id, err))
	}
	r, err := Replayable(t, cmp.Or(destination, of))
	if err != nil {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, err)
	}
	res, err := r.Replay(ctx, source, id, of, dryRun)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, eventError(err, t.Name, source, id) // purged meanwhile
	case errors.Is(err, delivery.ErrReserved):
		return nil, Mark(ErrNotReplayable, err)
	}
	return res, err
}

// replayedDelivery is the destination of the delivery of rec a replay to
// destination takes: that destination's own delivery when rec has one;
// otherwise (a replay elsewhere, or none named) its only delivery, or its
// only one not delivered nor skipped. Several leave it to the operator.
func replayedDelivery(rec *store.Record, destination string) (string, error) {
	if destination != "" && rec.Delivery(destination) != nil {
		return destination, nil
	}
	if len(rec.Deliveries) == 1 {
		return rec.Deliveries[0].Destination, nil
	}
	if len(rec.Deliveries) == 0 {
		return "", fmt.Errorf("the event is %s: %w", rec.Status, store.ErrNoDelivery)
	}
	open := ""
	for _, d := range rec.Deliveries {
		if d.Status != store.StatusDelivered && d.Status != store.StatusSkipped {
			if open != "" {
				return "", delivery.ErrAmbiguousDelivery
			}
			open = d.Destination
		}
	}
	if open == "" {
		return "", delivery.ErrAmbiguousDelivery
	}
	return open, nil
}

// Replayable returns what replays events to destination in t, or an
// ErrNotReplayable error saying why nothing can.
func Replayable(t Target, destination string) (Replayer, error) {
	r, err := t.Replayer(destination)
	if err != nil {
		return nil, Mark(ErrNotReplayable, err)
	}
	return r, nil
}

// replayers looks up the engine of each destination once per bulk
// operation: the one the operator named, or each event's own.
type replayers struct {
	t     Target
	named string
	found map[string]replayerOf
}

type replayerOf struct {
	r   Replayer
	err error
}

// newReplayers checks a destination the operator named up front, so that a
// bulk replay to one that cannot be replayed fails as a whole rather than
// skipping every event.
func newReplayers(t Target, named string) (*replayers, error) {
	rs := &replayers{t: t, named: named, found: map[string]replayerOf{}}
	if named != "" {
		r, err := Replayable(t, named)
		if err != nil {
			return nil, err
		}
		rs.found[named] = replayerOf{r: r}
	}
	return rs, nil
}

// checkSource fails a replay by a filter naming a source as a whole, up
// front, when none of the matching events can be replayed (the source's
// route is a sync one, or gone): that is a mistake about the source, not a
// list of events to skip.
func (rs *replayers) checkSource(f store.Filter, keys []Key) error {
	if f.Source == "" || len(keys) == 0 {
		return nil
	}
	var first error
	for _, k := range keys {
		_, err := rs.of(k.Destination)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return Mark(ErrNotReplayable, fmt.Errorf("no event of source %s can be replayed: %w", f.Source, first))
}

// of returns the replayer of an event bound to destination.
func (rs *replayers) of(destination string) (Replayer, error) {
	d := cmp.Or(rs.named, destination)
	f, ok := rs.found[d]
	if !ok {
		f.r, f.err = rs.t.Replayer(d)
		rs.found[d] = f
	}
	return f.r, f.err
}

// ReplayMatching replays every event matching f (at most limit, 0: all)
// to destination, or when that is empty each to its own destination, at
// most ReplayConcurrency at a time. A named destination that cannot be
// replayed to fails the whole replay, up front; an event whose own
// destination no loaded route delivers to is skipped.
func ReplayMatching(ctx context.Context, t Target, f store.Filter, destination string, limit int, dryRun bool) (*BulkReplayResponse, error) {
	rs, err := newReplayers(t, destination)
	if err != nil {
		return nil, err
	}
	// Collect the keys before replaying: a replay changes statuses and
	// would shift a status-filtered listing under its own cursor.
	keys, err := Matching(ctx, t, f, limit)
	if err != nil {
		return nil, fmt.Errorf("listing events to replay: %w", err)
	}

	if err := rs.checkSource(f, keys); err != nil {
		return nil, err
	}

	out := &BulkReplayResponse{Store: t.Name, DryRun: dryRun, Matched: len(keys), Results: make([]*delivery.ReplayResult, len(keys))}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, ReplayConcurrency)
	)
	for i, k := range keys {
		r, err := rs.of(k.Destination)
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
			res, err := r.Replay(ctx, k.Source, k.ID, k.Destination, dryRun)
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
	// Skipped counts events whose destination no loaded async route
	// delivers to.
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

// PreviewReplay says what ReplayMatching(ctx, t, f, destination, limit,
// false) would do, sending nothing. It walks the listing a page at a time, counting, and
// prepares the request (a dry run) of the first shown events only. The
// counts are read from the listing, so an event whose status changes
// between the preview and the replay is counted as it was.
func PreviewReplay(ctx context.Context, t Target, f store.Filter, destination string, limit, shown int) (*ReplayPreview, error) {
	rs, err := newReplayers(t, destination)
	if err != nil {
		return nil, err
	}
	out := &ReplayPreview{Store: t.Name}
	var firstSkip error
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
			of := ""
			if len(rec.Deliveries) > 0 {
				of = rec.Deliveries[0].Destination
			}
			if f.Destination != "" {
				of = f.Destination
			}
			r, rerr := rs.of(of)
			var res *delivery.ReplayResult
			switch {
			case rerr != nil:
				out.Skipped++
				if firstSkip == nil {
					firstSkip = rerr
				}
				res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true, Error: rerr.Error()}
			case rec.Status == store.StatusReserved:
				out.Failed++
				res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true, Error: delivery.ErrReserved.Error()}
			case len(out.Requests) < shown:
				res, err = r.Replay(ctx, rec.Source, rec.ID, of, true)
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
	if f.Source != "" && out.Matched > 0 && out.Skipped == out.Matched {
		// As ReplayMatching would (see checkSource).
		return nil, Mark(ErrNotReplayable, fmt.Errorf("no event of source %s can be replayed: %w", f.Source, firstSkip))
	}
	return out, nil
}
