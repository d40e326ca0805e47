// Package ops is what an operator does with stored events: list, show,
// count, replay and purge. The admin API (and so the CLI) and the browser
// console are two front ends on these functions, so a filter, a replay or a
// purge means the same in both. It knows stores only through store.Store and
// replays only through Replayer, so it runs with any store engine and in
// tests without Caddy.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

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
	// Replayer returns what replays events to the destination so named,
	// or an error saying why nothing can (a sync route, no loaded route
	// delivers to it).
	Replayer func(destination string) (Replayer, error)
}

// Statuses are the delivery statuses in life-cycle order.
var Statuses = []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered, store.StatusDead}

// IsKnownStatus reports whether s is one of Statuses.
func IsKnownStatus(s store.Status) bool { return slices.Contains(Statuses, s) }

// Providers returns the provider names a filter may name: the normalize
// registry's, sorted.
func Providers() []string { return normalize.Providers() }

// PurgeResponse is the outcome of a purge.
type PurgeResponse struct {
	// Store is the store purged.
	Store string `json:"store"`
	// Purged is how many events were deleted.
	Purged int `json:"purged"`
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

// PurgeEvent deletes one event through the store's purge by filter, which
// has no id: the filter is the event's own source, provider, type, status
// and receive time to the nanosecond, and it is used only once a listing
// shows that it matches this event alone. The items of a loyalty batch
// share all of these, so such an item cannot be purged alone (ErrConflict,
// saying how many share them); an event whose status changed between the
// two reads is not deleted (ErrConflict too).
func PurgeEvent(ctx context.Context, t Target, source, id string) (*PurgeResponse, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("both source and id are required"))
	}
	rec, err := t.Store.Get(ctx, source, id)
	if err != nil {
		return nil, eventError(err, t.Name, source, id)
	}
	f := store.Filter{
		Source: rec.Source, Provider: rec.Provider, Type: rec.Type, Status: rec.Status,
		From: rec.ReceivedAt, To: rec.ReceivedAt.Add(time.Nanosecond),
	}
	keys, err := Matching(ctx, t, f, 2)
	if err != nil {
		return nil, err
	}
	switch {
	case len(keys) == 0:
		return nil, Mark(ErrConflict, fmt.Errorf("event %s %s changed while it was being purged (it is no longer %s); look at it again", source, id, rec.Status))
	case len(keys) > 1 || keys[0].Source != source || keys[0].ID != id:
		return nil, Mark(ErrConflict, fmt.Errorf("event %s %s shares its source, type, status and receive time with other events (the items of one batch): purge them together by filter", source, id))
	}
	res, err := Purge(ctx, t, f, 1)
	if err != nil {
		return nil, err
	}
	if res.Purged == 0 {
		return nil, Mark(ErrConflict, fmt.Errorf("event %s %s changed while it was being purged; look at it again", source, id))
	}
	return res, nil
}
