package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ReplayConcurrency bounds the replays of one bulk replay, so an operator's
// "replay everything" does not flood the backend.
const ReplayConcurrency = 8

// BulkReplayResponse is the outcome of a replay, of one event or by
// filter: one result per delivery replayed.
type BulkReplayResponse struct {
	// Store is the store the events were read from.
	Store string `json:"store"`
	// DryRun is true when nothing was sent.
	DryRun bool `json:"dry_run,omitempty"`
	// Matched is how many stored events matched the filter (1 for a
	// replay of one event).
	Matched int `json:"matched"`
	// Delivered counts replays the backend answered with a 2xx; on a dry
	// run it counts the deliveries that would be sent.
	Delivered int `json:"delivered"`
	// Failed counts replays that got no 2xx or could not be made.
	Failed int `json:"failed"`
	// Skipped counts deliveries whose destination no loaded async route
	// delivers to, and events with no delivery to replay.
	Skipped int `json:"skipped"`
	// Results follow the listing order (newest first), one per delivery
	// replayed (or skipped); Error says why one was skipped or failed.
	Results []*delivery.ReplayResult `json:"results"`
}

// Replay sends deliveries of one event again now (or with dryRun, says
// what it would send): the one to the destination of (when named), else
// each that is not delivered or skipped (all of them when every one is;
// see Selected). Each goes to its own destination through the engine
// delivering to it, or, when to is named, the event goes once to that
// destination instead (the attempt is history on the delivery replayed:
// to's own delivery when the event has one, else the first selected). A
// replay of one delivery that cannot be made is an error (not found,
// not replayable); of several, each result says.
func Replay(ctx context.Context, t Target, source, id, of, to string, dryRun bool) (*BulkReplayResponse, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("replay by id needs both source and id"))
	}
	rec, err := t.Store.Get(ctx, source, id)
	if err != nil {
		return nil, eventError(err, t.Name, source, id)
	}
	if of != "" && rec.Delivery(of) == nil {
		return nil, Mark(ErrNotFound, fmt.Errorf("event %s %s has no delivery to destination %q", source, id, of))
	}
	rs, err := newReplayers(t, to)
	if err != nil {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, err)
	}
	k := Key{Source: source, ID: id, Deliveries: Selected(rec, "", "", of)}
	if len(k.Deliveries) == 0 {
		return nil, Mark(ErrNotReplayable, fmt.Errorf("event %s %s has no delivery to replay (status %s)", source, id, rec.Status))
	}
	if to != "" {
		k.Deliveries = []string{redirectedOf(rec, k.Deliveries, to)}
	}
	if len(k.Deliveries) == 1 {
		r, err := rs.of(k.Deliveries[0])
		if err != nil {
			return nil, fmt.Errorf("replaying %s %s: %w", source, id, Mark(ErrNotReplayable, err))
		}
		res, err := r.Replay(ctx, source, id, k.Deliveries[0], dryRun)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, eventError(err, t.Name, source, id) // purged meanwhile
		case errors.Is(err, delivery.ErrReserved), errors.Is(err, store.ErrNoDelivery):
			return nil, Mark(ErrNotReplayable, err)
		case err != nil:
			return nil, err
		}
		out := &BulkReplayResponse{Store: t.Name, DryRun: dryRun, Matched: 1, Results: []*delivery.ReplayResult{res}}
		if dryRun || res.Attempt != nil && res.Attempt.Status >= 200 && res.Attempt.Status <= 299 {
			out.Delivered++
		} else {
			out.Failed++
		}
		return out, nil
	}
	return replayKeys(ctx, t, rs, []Key{k}, dryRun)
}

// redirectedOf is the delivery a replay of rec sent to destination to is
// recorded on: to's own when rec has one among selected, else the first
// selected.
func redirectedOf(rec *store.Record, selected []string, to string) string {
	if slices.Contains(selected, to) {
		return to
	}
	return selected[0]
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
// operation: the one the operator named, or each delivery's own.
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
// front, when none of the matching deliveries can be replayed (the source's
// route is a sync one, or gone): that is a mistake about the source, not a
// list of events to skip.
func (rs *replayers) checkSource(f store.Filter, keys []Key) error {
	if f.Source == "" || len(keys) == 0 {
		return nil
	}
	var first error
	for _, k := range keys {
		for _, d := range k.Deliveries {
			_, err := rs.of(d)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
	}
	if first == nil {
		return nil // no delivery to replay at all: each event says so
	}
	return Mark(ErrNotReplayable, fmt.Errorf("no event of source %s can be replayed: %w", f.Source, first))
}

// of returns the replayer of a delivery to destination.
func (rs *replayers) of(destination string) (Replayer, error) {
	d := cmp.Or(rs.named, destination)
	f, ok := rs.found[d]
	if !ok {
		f.r, f.err = rs.t.Replayer(d)
		rs.found[d] = f
	}
	return f.r, f.err
}

// ReplayMatching replays the deliveries of every event matching f (at
// most limit events, 0: all; see Selected for which deliveries: with
// f.Destination, that destination's) to destination, or when that is
// empty each to its own destination, at most ReplayConcurrency at a time.
// A named destination that cannot be replayed to fails the whole replay,
// up front; a delivery whose own destination no loaded route delivers to
// is skipped.
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
	if destination != "" {
		// One send per event to the named destination.
		for i := range keys {
			if len(keys[i].Deliveries) > 1 {
				keys[i].Deliveries = keys[i].Deliveries[:1]
			}
		}
	}
	if err := rs.checkSource(f, keys); err != nil {
		return nil, err
	}
	return replayKeys(ctx, t, rs, keys, dryRun)
}

// replayKeys replays each selected delivery of keys, at most
// ReplayConcurrency at a time, and counts the outcomes.
func replayKeys(ctx context.Context, t Target, rs *replayers, keys []Key, dryRun bool) (*BulkReplayResponse, error) {
	type job struct {
		k Key
		d string
	}
	var jobs []job
	out := &BulkReplayResponse{Store: t.Name, DryRun: dryRun, Matched: len(keys)}
	for _, k := range keys {
		if len(k.Deliveries) == 0 {
			jobs = append(jobs, job{k: k})
		}
		for _, d := range k.Deliveries {
			jobs = append(jobs, job{k, d})
		}
	}
	out.Results = make([]*delivery.ReplayResult, len(jobs))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, ReplayConcurrency)
	)
	for i, j := range jobs {
		if j.d == "" {
			out.Results[i] = &delivery.ReplayResult{Source: j.k.Source, ID: j.k.ID, DryRun: dryRun, Error: "no delivery to replay"}
			out.Skipped++
			continue
		}
		r, err := rs.of(j.d)
		if err != nil {
			out.Results[i] = &delivery.ReplayResult{Source: j.k.Source, ID: j.k.ID, Destination: j.d, DryRun: dryRun, Error: err.Error()}
			out.Skipped++
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("bulk replay interrupted after %d of %d deliveries: %w", i, len(jobs), ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := r.Replay(ctx, j.k.Source, j.k.ID, j.d, dryRun)
			if res == nil {
				res = &delivery.ReplayResult{Source: j.k.Source, ID: j.k.ID, Destination: j.d, DryRun: dryRun}
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
	// Sendable counts the deliveries a replay would send.
	Sendable int `json:"sendable"`
	// Skipped counts deliveries whose destination no loaded async route
	// delivers to, and events with no delivery to replay.
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
			sel := Selected(rec, f.Destination, f.Status, "")
			if destination != "" && len(sel) > 1 {
				sel = sel[:1]
			}
			if len(sel) == 0 {
				out.Skipped++
				if len(out.Requests) < shown {
					out.Requests = append(out.Requests, &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, DryRun: true, Error: "no delivery to replay"})
				}
				continue
			}
			for _, dest := range sel {
				r, rerr := rs.of(dest)
				d := rec.Delivery(dest)
				var res *delivery.ReplayResult
				switch {
				case rerr != nil:
					out.Skipped++
					if firstSkip == nil {
						firstSkip = rerr
					}
					res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, Destination: dest, DryRun: true, Error: rerr.Error()}
				case rec.Status == store.StatusReserved || d != nil && (d.Status == store.StatusReserved || d.Status == store.StatusHeld):
					out.Failed++
					res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, Destination: dest, DryRun: true, Error: delivery.ErrReserved.Error()}
				case len(out.Requests) < shown:
					res, err = r.Replay(ctx, rec.Source, rec.ID, dest, true)
					if res == nil {
						res = &delivery.ReplayResult{Source: rec.Source, ID: rec.ID, Destination: dest, DryRun: true}
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
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}
	if f.Source != "" && out.Matched > 0 && firstSkip != nil && out.Sendable == 0 && out.Failed == 0 {
		// As ReplayMatching would (see checkSource).
		return nil, Mark(ErrNotReplayable, fmt.Errorf("no event of source %s can be replayed: %w", f.Source, firstSkip))
	}
	return out, nil
}
