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

// Replayer sends one delivery of a stored event again to its destination;
// *delivery.Engine is one. of names the delivery replayed by its
// destination (see delivery.Engine.Replay).
type Replayer interface {
	Replay(ctx context.Context, source, id, of string, dryRun bool) (*delivery.ReplayResult, error)
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
	// Destinations returns what this gateway knows of the destinations
	// loaded on this store (breaker, operator pause, delivery rate); nil
	// when the front end has none to offer.
	Destinations func() []LiveDestination
	// Pause holds (paused true) or lets go (false) the named destination
	// in this gateway's engines; nil when the front end cannot.
	Pause func(destination string, paused bool) error
	// Wake wakes the workers delivering to destination in this gateway,
	// so that a lane an operator unblocked goes on at once; nil: they
	// find it at their next poll.
	Wake func(destination string)
	// Oldest returns, per destination, when its oldest delivery waiting
	// (pending or retrying) was received, as last counted; nil: not known.
	Oldest func() map[string]time.Time
}

// Statuses are the statuses an event or a delivery can have, in life-cycle
// order.
var Statuses = []store.Status{store.StatusReserved, store.StatusHeld, store.StatusPending, store.StatusRetrying,
	store.StatusDelivered, store.StatusDead, store.StatusSkipped, store.StatusReleased, store.StatusUnmatched}

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

// PurgeEvent deletes one event, and nothing else: a purge by the filter
// {Source, ID}, which selects exactly that record, so an item of a loyalty
// batch goes alone while the others of its batch (and the shared body)
// stay. An absent event is ErrNotFound.
func PurgeEvent(ctx context.Context, t Target, source, id string) (*PurgeResponse, error) {
	if source == "" || id == "" {
		return nil, Mark(ErrInvalid, errors.New("both source and id are required"))
	}
	res, err := Purge(ctx, t, store.Filter{Source: source, ID: id}, 1)
	if err != nil {
		return nil, err
	}
	if res.Purged == 0 {
		return nil, Mark(ErrNotFound, fmt.Errorf("no event %s %s in %s", source, id, t.Name))
	}
	return res, nil
}
