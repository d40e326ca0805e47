package report

import (
	"slices"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
)

// A provider without event ids (the loyalty platform) gets ids the report
// cannot predict: the gateway gives every event it accepts an id of its own,
// the first 32 digits of the item's content key, '-', and a random part.
// Within the route's dedup window identical content is one event; after it,
// the same content is a new event. So for such a provider the report groups
// the sent items by content key, works out from the send times how many
// events the gateway may make of them, and matches the delivered ids to the
// group by their first 32 digits.
//
// The gateway measures the window between its own insertions, which happen
// somewhere between a request's start and its answer. A send therefore
// counts as surely inside the window of an earlier one only when the
// later answer came less than the window after the earlier start, and as
// surely outside it only when the later start came at least the window
// after the earlier answer; in between, both outcomes are accepted. A
// request without an answer may have been stored at any later time.
//
// Not modelled: a synchronous route holds a content key for as long as a
// delivery is reserved, even past the window, so a repeat that arrives
// while a slow delivery is still in flight is a duplicate there.

// derivedDigits is how much of the content key a derived id shows.
const derivedDigits = 32

// reach is when one send may have been inserted: between start and end.
type reach struct {
	start, end time.Time
	// acked: the gateway took the body (2xx), so some event holds it.
	acked bool
}

// never is the end of a send that got no answer: the gateway may still have
// stored it.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// reachOf is the insertion interval of s, or an empty one when s cannot
// have been stored (the gateway refused it with a 4xx or answered 3xx).
func reachOf(s *sim.Send) reach {
	r := reach{start: s.Start, end: s.Start.Add(s.Latency), acked: s.Acked()}
	switch {
	case r.acked:
	case s.Status == 0 || s.Status >= 500:
		r.end = never
	default:
		r.end = time.Time{}
	}
	return r
}

func (r reach) possible() bool { return !r.end.IsZero() }

// idState is one delivered derived id.
type idState struct {
	deliveries, replays int
	firstDeliv          time.Time
}

// contentGroup is every sent item with one content key.
type contentGroup struct {
	provider string
	window   time.Duration
	sends    []reach // sorted by start in tally
	ids      map[string]*idState
	order    []string // ids in first-delivery order
}

func prefixKey(k sim.Key) sim.Key {
	return sim.Key{Source: k.Source, ID: k.ID[:min(len(k.ID), derivedDigits)]}
}

// derivedPrefix is the content-key prefix a delivered id carries, or the
// zero Key when the id does not have the derived shape.
func derivedPrefix(k sim.Key) sim.Key {
	if len(k.ID) <= derivedDigits || k.ID[derivedDigits] != '-' {
		return sim.Key{}
	}
	return sim.Key{Source: k.Source, ID: k.ID[:derivedDigits]}
}

func (g *contentGroup) deliver(d *sink.Delivery) {
	st := g.ids[d.ID]
	if st == nil {
		st = &idState{}
		g.ids[d.ID] = st
		g.order = append(g.order, d.ID)
	}
	if d.Replay {
		st.replays++
		return
	}
	st.deliveries++
	if st.firstDeliv.IsZero() || d.Received.Before(st.firstDeliv) {
		st.firstDeliv = d.Received
	}
}

// minEvents is the fewest events the acknowledged sends need: a new one
// only where a send is surely outside the window of the current one.
func (g *contentGroup) minEvents() int {
	n := 0
	var anchor reach
	for _, s := range g.sends {
		if !s.acked {
			continue
		}
		if n == 0 || g.window == 0 || !s.start.Before(anchor.end.Add(g.window)) {
			n++
			anchor = s
		}
	}
	return n
}

// anchors are the sends that may each have started an event, as many as
// possible: every send that is not surely inside the window of the current
// one. Their count is the most events the sends can make.
func (g *contentGroup) anchors() []reach {
	var out []reach
	for _, s := range g.sends {
		if !s.possible() {
			continue
		}
		if len(out) == 0 || g.window == 0 || !s.end.Before(out[len(out)-1].start.Add(g.window)) {
			out = append(out, s)
		}
	}
	return out
}

// tally adds the group's numbers to c and its problems to r, and returns
// the latency of each delivered id: from the start of the latest event the
// sends may have started before its first delivery.
func (g *contentGroup) tally(r *Report, c *Counts, k sim.Key, hasSink bool) []time.Duration {
	slices.SortStableFunc(g.sends, func(a, b reach) int { return a.start.Compare(b.start) })
	lo := g.minEvents()
	anchors := g.anchors()
	hi := len(anchors)
	c.Expected += hi
	c.AckedEvents += lo
	if !hasSink {
		return nil
	}
	var lat []time.Duration
	delivered := len(g.ids)
	c.Delivered += delivered
	for _, id := range g.order {
		st := g.ids[id]
		c.Replays += st.replays
		if st.deliveries > 1 {
			c.Doubled++
			c.ExtraDeliveries += st.deliveries - 1
			if len(r.DoubledKeys) < MaxListed {
				r.DoubledKeys = append(r.DoubledKeys, sim.Key{Source: k.Source, ID: id})
			}
		}
		if st.firstDeliv.IsZero() {
			continue
		}
		var from time.Time
		for _, a := range anchors {
			if a.start.After(st.firstDeliv) {
				break
			}
			from = a.start
		}
		if !from.IsZero() {
			lat = append(lat, st.firstDeliv.Sub(from))
		}
	}
	switch {
	case delivered < lo:
		c.Lost += lo - delivered
		if len(r.LostKeys) < MaxListed {
			r.LostKeys = append(r.LostKeys, k)
		}
	case delivered > 0 && hi == 0:
		// Events for bodies the gateway refused.
		c.Unexpected += delivered
		if len(r.UnexpectedKeys) < MaxListed {
			r.UnexpectedKeys = append(r.UnexpectedKeys, k)
		}
	case delivered > hi:
		// More events than the sends can make: the gateway took a copy
		// inside the window as a new event, and the backend got the
		// notification twice under two ids.
		c.Doubled++
		c.ExtraDeliveries += delivered - hi
		if len(r.DoubledKeys) < MaxListed {
			r.DoubledKeys = append(r.DoubledKeys, k)
		}
	}
	c.DeliveredUnacked += max(0, min(delivered, hi)-lo)
	return lat
}
