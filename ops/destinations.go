package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// LiveDestination is what this gateway knows of a destination loaded on a
// store, beyond what the store holds.
type LiveDestination struct {
	// Name is the destination's name.
	Name string `json:"name"`
	// Sources are the sources of the routes delivering to it.
	Sources []string `json:"sources,omitempty"`
	// Breaker is its circuit breaker's state in this gateway: closed,
	// open or half-open.
	Breaker string `json:"breaker"`
	// PausedByOperator is true while an operator holds it paused in this
	// gateway (see Pause).
	PausedByOperator bool `json:"paused_by_operator,omitempty"`
	// Rate is the deliveries per second this gateway made to it over the
	// last minute (2xx answers, replays included).
	Rate float64 `json:"rate"`
	// RateLimit is its configured rate limit per second, 0 for none.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// Ordered is true when it has an order_by key (lanes).
	Ordered bool `json:"ordered,omitempty"`
}

// The states of a destination in DestinationView.State.
const (
	// StateHealthy: the destination takes deliveries.
	StateHealthy = "healthy"
	// StatePaused: its breaker is open or half-open (one probe per
	// cooldown), or an operator paused it.
	StatePaused = "paused"
	// StateNotLoaded: deliveries to it are stored, but no loaded route
	// delivers to it: they wait until a config does.
	StateNotLoaded = "not loaded"
)

// DestinationView is one destination on the destinations page and in
// `caddy webhooks destinations`.
type DestinationView struct {
	LiveDestination
	// State is healthy, paused or not loaded.
	State string `json:"state"`
	// QueueDepth is how many of its deliveries wait (pending or retrying).
	QueueDepth int `json:"queue_depth"`
	// Dead is how many of its deliveries are dead.
	Dead int `json:"dead"`
	// Counts are its deliveries per status (statuses with none left out).
	Counts map[store.Status]int `json:"counts"`
	// OldestPending is when the oldest of its waiting deliveries' events
	// was received, as last counted (at most a few seconds old); nil when
	// none waits or it is not known.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
	// ParkedLanes is how many of its lanes are parked (a dead head).
	ParkedLanes int `json:"parked_lanes"`
}

// DestinationsResponse lists the destinations of a store.
type DestinationsResponse struct {
	// Store is the store the counts are from.
	Store string `json:"store"`
	// Destinations are sorted by name.
	Destinations []DestinationView `json:"destinations"`
}

// Destinations returns every destination loaded on t or named by a stored
// delivery, with its state, counts, oldest waiting delivery and parked
// lanes. The counts are exact (DeliveryCounts); the parked lanes are found
// by reading the destination's dead deliveries, usually few.
func Destinations(ctx context.Context, t Target) (*DestinationsResponse, error) {
	counts, err := t.Store.DeliveryCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting deliveries in %s: %w", t.Name, err)
	}
	views := map[string]*DestinationView{}
	if t.Destinations != nil {
		for _, l := range t.Destinations() {
			v := &DestinationView{LiveDestination: l, State: StateHealthy}
			if l.PausedByOperator || l.Breaker != "" && l.Breaker != "closed" {
				v.State = StatePaused
			}
			views[l.Name] = v
		}
	}
	for name := range counts {
		if views[name] == nil {
			views[name] = &DestinationView{LiveDestination: LiveDestination{Name: name}, State: StateNotLoaded}
		}
	}
	var oldest map[string]time.Time
	if t.Oldest != nil {
		oldest = t.Oldest()
	}
	out := &DestinationsResponse{Store: t.Name, Destinations: make([]DestinationView, 0, len(views))}
	for name, v := range views {
		c := counts[name]
		if c == nil {
			c = map[store.Status]int{}
		}
		v.Counts = c
		v.QueueDepth = c[store.StatusPending] + c[store.StatusRetrying]
		v.Dead = c[store.StatusDead]
		if at, ok := oldest[name]; ok && v.QueueDepth > 0 {
			v.OldestPending = &at
		}
		if v.Dead > 0 {
			lanes, err := parked(ctx, t, name, 0)
			if err != nil {
				return nil, err
			}
			v.ParkedLanes = len(lanes)
		}
		out.Destinations = append(out.Destinations, *v)
	}
	slices.SortFunc(out.Destinations, func(a, b DestinationView) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Lane is one parked lane of an ordered destination: its dead head, which
// an operator replays (the lane resumes once it is delivered) or skips.
type Lane struct {
	// Key is the lane's ordering key (its order_by value).
	Key string `json:"key"`
	// Head is the dead delivery's event: what replay and skip take.
	Head EventSummary `json:"head"`
	// Sequence is the head's place in its lane.
	Sequence uint64 `json:"sequence"`
	// DeadReason says why the head gets no further attempt.
	DeadReason store.DeadReason `json:"dead_reason,omitempty"`
	// Behind is how many of the lane's deliveries wait behind the head,
	// when counted (see LanesResponse.BehindCounted).
	Behind int `json:"behind"`
}

// LanesResponse lists the parked lanes of a destination.
type LanesResponse struct {
	// Store and Destination say what was read.
	Store       string `json:"store"`
	Destination string `json:"destination"`
	// Lanes are the parked lanes, the longest parked first.
	Lanes []Lane `json:"lanes"`
	// BehindCounted is true when Behind was counted for every lane: the
	// destination's waiting deliveries were few enough (at most
	// MaxBehindScan) to read them all.
	BehindCounted bool `json:"behind_counted"`
}

// MaxBehindScan bounds the waiting deliveries Lanes reads to count what
// waits behind each parked head: a backlog of a million is not read to
// fill in a column.
const MaxBehindScan = 10000

// Lanes returns the parked lanes of destination in t: each dead
// delivery with a lane is the head that holds its lane (Claim hands out
// nothing behind it).
func Lanes(ctx context.Context, t Target, destination string) (*LanesResponse, error) {
	if destination == "" {
		return nil, Mark(ErrInvalid, errors.New("name the destination whose lanes to list"))
	}
	heads, err := parked(ctx, t, destination, 0)
	if err != nil {
		return nil, err
	}
	out := &LanesResponse{Store: t.Name, Destination: destination, Lanes: make([]Lane, 0, len(heads))}
	byKey := map[string]int{}
	for _, rec := range heads {
		d := rec.Delivery(destination)
		byKey[d.Lane] = len(out.Lanes)
		out.Lanes = append(out.Lanes, Lane{Key: d.Lane, Head: SummarizeFor(rec, destination), Sequence: d.Sequence, DeadReason: d.DeadReason})
	}
	slices.SortStableFunc(out.Lanes, func(a, b Lane) int { return a.Head.ReceivedAt.Compare(b.Head.ReceivedAt) })
	for i, l := range out.Lanes {
		byKey[l.Key] = i
	}
	if len(out.Lanes) == 0 {
		out.BehindCounted = true
		return out, nil
	}
	complete := true
	read := 0
	for _, status := range []store.Status{store.StatusPending, store.StatusRetrying} {
		f := store.Filter{Destination: destination, Status: status, Limit: store.MaxListLimit}
		for complete {
			recs, next, err := t.Store.List(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("reading the waiting deliveries of %s in %s: %w", destination, t.Name, err)
			}
			for _, rec := range recs {
				if d := rec.Delivery(destination); d != nil {
					if i, ok := byKey[d.Lane]; ok && d.Lane != "" {
						out.Lanes[i].Behind++
					}
				}
			}
			read += len(recs)
			if next == "" {
				break
			}
			if read >= MaxBehindScan {
				complete = false
			}
			f.Cursor = next
		}
	}
	out.BehindCounted = complete
	if !complete {
		for i := range out.Lanes {
			out.Lanes[i].Behind = 0
		}
	}
	return out, nil
}

// parked returns the records whose delivery to destination is a dead
// lane head, at most limit (0: all).
func parked(ctx context.Context, t Target, destination string, limit int) ([]*store.Record, error) {
	var out []*store.Record
	f := store.Filter{Destination: destination, Status: store.StatusDead, Limit: store.MaxListLimit}
	for {
		recs, next, err := t.Store.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("reading the dead deliveries of %s in %s: %w", destination, t.Name, err)
		}
		for _, rec := range recs {
			if d := rec.Delivery(destination); d != nil && d.Status == store.StatusDead && d.Lane != "" {
				out = append(out, rec)
				if limit > 0 && len(out) == limit {
					return out, nil
				}
			}
		}
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// SkipResponse is the outcome of a skip.
type SkipResponse struct {
	// Store is the store written.
	Store string `json:"store"`
	// Event is the event after the skip, as a listing by the skipped
	// delivery's destination shows it: its status is that delivery's
	// (skipped), each delivery's is in Deliveries.
	Event EventSummary `json:"event"`
}

// Skip settles the dead delivery of source/id to destination as skipped:
// the operator's decision that its backend never gets this event, so the
// deliveries behind it in its lane go on. A delivery that is not dead is
// an ErrConflict.
func Skip(ctx context.Context, t Target, source, id, destination string) (*SkipResponse, error) {
	if source == "" || id == "" || destination == "" {
		return nil, Mark(ErrInvalid, errors.New("skip needs the source, the id and the destination of the dead delivery"))
	}
	rec, err := t.Store.Skip(ctx, source, id, destination)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, eventError(err, t.Name, source, id)
	case errors.Is(err, store.ErrNoDelivery):
		return nil, Mark(ErrNotFound, fmt.Errorf("event %s %s has no delivery to destination %q", source, id, destination))
	case errors.Is(err, store.ErrNotDead):
		return nil, Mark(ErrConflict, fmt.Errorf("skipping %s %s to %s: %w", source, id, destination, err))
	case err != nil:
		return nil, fmt.Errorf("skipping %s %s to %s in %s: %w", source, id, destination, t.Name, err)
	}
	if t.Wake != nil {
		t.Wake(destination)
	}
	return &SkipResponse{Store: t.Name, Event: SummarizeFor(rec, destination)}, nil
}

// PauseResponse is the outcome of a pause or resume.
type PauseResponse struct {
	Destination string `json:"destination"`
	// Paused is whether an operator now holds it paused in this gateway.
	Paused bool `json:"paused"`
}

// Pause holds destination paused (or with paused false lets it go) in
// this gateway: its engines claim nothing until it is resumed. It is in
// memory, per gateway process: other gateways sharing a database go on
// delivering, and a restart or a config reload resumes it.
func Pause(t Target, destination string, paused bool) (*PauseResponse, error) {
	if destination == "" {
		return nil, Mark(ErrInvalid, errors.New("name the destination to pause or resume"))
	}
	if t.Pause == nil {
		return nil, Mark(ErrNotReplayable, errors.New("this front end cannot pause destinations"))
	}
	if err := t.Pause(destination, paused); err != nil {
		return nil, Mark(ErrNotFound, err)
	}
	return &PauseResponse{Destination: destination, Paused: paused}, nil
}
