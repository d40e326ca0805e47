package handlers

import (
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/filter"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Destination is one of a route's async destinations as the request path
// sees it: its name, the filter an event must pass to get a delivery to it,
// and its ordering key. Both are evaluated once, at ingest: the deliveries
// stored with an event are the destinations it matched then, and a later
// config change does not rewrite them.
type Destination struct {
	// Name is the destination's name, written on each delivery to it.
	Name string
	// Filter decides whether an event gets a delivery to the destination;
	// nil lets every event through.
	Filter *filter.Filter
	// OrderBy, when set, makes the destination ordered: each delivery
	// joins the lane its key names, delivered one at a time in acceptance
	// order. An event whose key is empty, or cannot be evaluated, gets an
	// unordered delivery (see deliveries).
	OrderBy *filter.Key
}

// evalErrors counts the filter and key evaluation errors of one request,
// logged once for the request rather than once per batch item.
type evalErrors struct {
	n     int
	first error
	dest  string
	id    string
}

func (e *evalErrors) add(dest, id string, err error) {
	if e.n == 0 {
		e.first, e.dest, e.id = err, dest, id
	}
	e.n++
}

func (e *evalErrors) log(l *zap.Logger) {
	if e.n == 0 {
		return
	}
	l.Warn("filter or order_by could not be evaluated for an event: it did not match (filter) or was delivered unordered (order_by)",
		zap.String("destination", e.dest), zap.String("id", e.id), zap.Int("events", e.n), zap.Error(e.first))
}

// deliveries are the deliveries an event gets: for a sync route first
// its sync delivery (reserved), then one per async destination whose
// filter it matches (held until the sync delivery succeeds, pending on an
// async route), in the order the route names them. An ordered
// destination's delivery carries the event's lane; an empty key leaves it
// unordered, since a lane of every keyless event would serialise them all
// behind one another for nothing; a key that cannot be evaluated does the
// same (and is logged), since refusing the event would lose it and
// parking it has nothing to park behind.
func (g *Gateway) deliveries(ev *schemas.Event, source string, errs *evalErrors) []store.Delivery {
	n := len(g.Destinations)
	status := store.StatusPending
	var out []store.Delivery
	if g.Mode == Sync {
		out = make([]store.Delivery, 1, n+1)
		out[0] = store.Delivery{Destination: g.syncDestination(source), Status: store.StatusReserved}
		status = store.StatusHeld
	} else {
		out = make([]store.Delivery, 0, n)
	}
	// One Input per event, made by the first destination that reads it,
	// so the event's data is viewed once for all of them.
	var in *filter.Input
	input := func() *filter.Input {
		if in == nil {
			in = filter.NewInput(ev)
		}
		return in
	}
	for _, d := range g.Destinations {
		if d.Filter != nil && !d.Filter.MatchesAll() {
			ok, err := d.Filter.MatchInput(input())
			if err != nil {
				errs.add(d.Name, ev.ID, err)
			}
			if !ok {
				continue
			}
		}
		del := store.Delivery{Destination: d.Name, Status: status}
		if d.OrderBy != nil {
			lane, err := d.OrderBy.Eval(input())
			if err != nil {
				errs.add(d.Name, ev.ID, err)
			}
			del.Lane = lane
		}
		out = append(out, del)
	}
	return out
}

// syncDestination names a sync route's own delivery (the forward through
// reverse_proxy): SyncDestination, or the event's source.
func (g *Gateway) syncDestination(source string) string {
	if g.SyncDestination != "" {
		return g.SyncDestination
	}
	return source
}
