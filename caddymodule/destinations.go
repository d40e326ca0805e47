package caddymodule

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/internal/countcache"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Metric names of the destinations' gauges.
const (
	metricDestinationQueueDepth = "webhook_gateway_destination_queue_depth"
	metricDestinationDead       = "webhook_gateway_destination_dead_deliveries"
	metricParkedLanes           = "webhook_gateway_destination_parked_lanes"
	metricDestinationHeld       = "webhook_gateway_destination_held"
)

// waiting is what waits in a store, counted together on the counts'
// policy (a background refresh at most every countsTTL): the deliveries
// per destination and status, when the oldest waiting delivery's event
// was received, by source and by destination, and each destination's
// parked lanes.
type waiting struct {
	counts        map[string]map[store.Status]int
	bySource      map[string]time.Time
	byDestination map[string]time.Time
	parked        map[string]int
}

// newWaitingCache returns the cache of what waits in db, on the counts'
// policy.
func newWaitingCache(db store.Store) *countcache.Cache[*waiting] {
	return countcache.New(countsTTL, countsTimeout, func(ctx context.Context) (*waiting, error) {
		return waitingIn(ctx, db)
	})
}

// waitingIn counts what waits in db. The store has no operation that
// answers "oldest" directly: List, the only one that filters by status,
// returns the newest first. So it pages through each destination's
// waiting deliveries to the end, and its dead ones to find the parked lane
// heads (a dead delivery with a lane): a scan of what waits, skipped for a
// destination with nothing waiting (DeliveryCounts). Paging is correct
// while deliveries come and go: a cursor neither repeats nor skips a
// record that stays, and one that leaves the queue meanwhile is one the
// next refresh no longer sees.
func waitingIn(ctx context.Context, db store.Store) (*waiting, error) {
	counts, err := db.DeliveryCounts(ctx)
	if err != nil {
		return nil, err
	}
	w := &waiting{counts: counts, bySource: map[string]time.Time{}, byDestination: map[string]time.Time{}, parked: map[string]int{}}
	for dest, c := range counts {
		for _, status := range []store.Status{store.StatusPending, store.StatusRetrying, store.StatusDead} {
			if c[status] == 0 {
				continue
			}
			err := eachListed(ctx, db, store.Filter{Destination: dest, Status: status, Limit: store.MaxListLimit}, func(r *store.Record) {
				d := r.Delivery(dest)
				if d == nil || d.Status != status {
					return
				}
				if status == store.StatusDead {
					if d.Lane != "" {
						w.parked[dest]++
					}
					return
				}
				if t, ok := w.byDestination[dest]; !ok || r.ReceivedAt.Before(t) {
					w.byDestination[dest] = r.ReceivedAt
				}
				if t, ok := w.bySource[r.Source]; !ok || r.ReceivedAt.Before(t) {
					w.bySource[r.Source] = r.ReceivedAt
				}
			})
			if err != nil {
				return nil, fmt.Errorf("reading the %s deliveries of %s: %w", status, dest, err)
			}
		}
	}
	return w, nil
}

// eachListed calls fn for every record f lists, page by page.
func eachListed(ctx context.Context, db store.Store, f store.Filter, fn func(*store.Record)) error {
	for {
		recs, next, err := db.List(ctx, f)
		if err != nil {
			return err
		}
		for _, r := range recs {
			fn(r)
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}

// destinationEngines returns the live engines on the store named name by
// destination, oldest route first, and the sources of the routes
// delivering to each.
func (r *registry) destinationEngines(name string) (map[string][]*delivery.Engine, map[string][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type seen struct {
		e   *delivery.Engine
		seq uint64
	}
	byDest := map[string][]seen{}
	sources := map[string][]string{}
	for source, rs := range r.routes {
		for _, route := range rs {
			if route.store != name {
				continue
			}
			for _, e := range route.engines {
				d := e.Destination()
				if !slices.ContainsFunc(byDest[d], func(s seen) bool { return s.e == e }) {
					byDest[d] = append(byDest[d], seen{e, route.seq})
				}
				if !slices.Contains(sources[d], source) {
					sources[d] = append(sources[d], source)
				}
			}
		}
	}
	out := make(map[string][]*delivery.Engine, len(byDest))
	for d, ss := range byDest {
		slices.SortFunc(ss, func(a, b seen) int { return cmp.Compare(a.seq, b.seq) })
		for _, s := range ss {
			out[d] = append(out[d], s.e)
		}
		sort.Strings(sources[d])
	}
	return out, sources
}

// operate gives t what this gateway knows of its destinations: their
// breakers, the operator's pauses and the delivery rate, pause and resume,
// and the oldest waiting delivery as last counted.
func (r *registry) operate(t *ops.Target, name string, ls *liveStore) {
	t.Destinations = func() []ops.LiveDestination {
		engines, sources := r.destinationEngines(name)
		out := make([]ops.LiveDestination, 0, len(engines))
		for d, es := range engines {
			newest := es[len(es)-1]
			l := ops.LiveDestination{Name: d, Sources: sources[d], Breaker: newest.Breaker().State.String(),
				Rate: processMetrics.rates.rate(d, time.Now())}
			if rl := newest.RateLimit(); rl.Events > 0 && rl.Per > 0 {
				l.RateLimit = float64(rl.Events) / rl.Per.Seconds()
			}
			for _, e := range es {
				l.PausedByOperator = l.PausedByOperator || e.Held()
				if s := e.Breaker().State; s != throttle.Closed {
					l.Breaker = s.String()
				}
			}
			out = append(out, l)
		}
		return out
	}
	t.Pause = func(destination string, paused bool) error {
		engines, _ := r.destinationEngines(name)
		es := engines[destination]
		if len(es) == 0 {
			return fmt.Errorf("no loaded route delivers to destination %q with store %s", destination, name)
		}
		changed := false
		for _, e := range es {
			changed = e.Hold(paused) || changed
		}
		if changed {
			if paused {
				alertPaused(destination, "operator")
			} else {
				alertResumed(destination, "operator")
			}
		}
		return nil
	}
	t.Wake = func(destination string) {
		engines, _ := r.destinationEngines(name)
		for _, e := range engines[destination] {
			e.Notify()
		}
	}
	t.Oldest = func() map[string]time.Time {
		w, ok := ls.oldest.Peek(firstCountsDeadline)
		if !ok {
			return nil
		}
		return w.byDestination
	}
}

// destinationCollector reports each destination's queue depth, dead
// deliveries and parked lanes (from the store, as last counted) and
// whether an operator holds it paused in this gateway. It also creates the
// delivery counters' series of every loaded (source, destination) at zero
// (see watch), since a route's destinations are its engines'.
type destinationCollector struct {
	reg                     *registry
	depth, dead, parked, hd *prometheus.Desc
}

var _ prometheus.Collector = (*destinationCollector)(nil)

func newDestinationCollector(reg *registry) *destinationCollector {
	return &destinationCollector{
		reg: reg,
		depth: prometheus.NewDesc(metricDestinationQueueDepth,
			"Deliveries waiting (pending or retrying) by destination, in all loaded stores; refreshed at most every 10s.",
			[]string{"destination"}, nil),
		dead: prometheus.NewDesc(metricDestinationDead,
			"Dead deliveries (no further attempt; replay, skip or purge them) by destination, in all loaded stores; refreshed at most every 10s.",
			[]string{"destination"}, nil),
		parked: prometheus.NewDesc(metricParkedLanes,
			"Parked lanes (an ordered lane whose head delivery is dead) by destination, in all loaded stores; refreshed at most every 10s.",
			[]string{"destination"}, nil),
		hd: prometheus.NewDesc(metricDestinationHeld,
			"1 while an operator holds the destination paused in this gateway, else 0.",
			[]string{"destination"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *destinationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.dead
	ch <- c.parked
	ch <- c.hd
}

// Collect implements prometheus.Collector.
func (c *destinationCollector) Collect(ch chan<- prometheus.Metric) {
	depth, dead, parked, held := map[string]int{}, map[string]int{}, map[string]int{}, map[string]bool{}
	for name, ls := range c.reg.storesByName() {
		engines, sources := c.reg.destinationEngines(name)
		for d, es := range engines {
			depth[d] += 0
			dead[d] += 0
			parked[d] += 0
			for _, e := range es {
				held[d] = held[d] || e.Held()
			}
			for _, s := range sources[d] {
				processMetrics.watchDestination(s, d)
			}
		}
		w, ok := ls.oldest.Peek(firstCountsDeadline)
		if !ok {
			continue
		}
		for d, counts := range w.counts {
			depth[d] += counts[store.StatusPending] + counts[store.StatusRetrying]
			dead[d] += counts[store.StatusDead]
		}
		for d, n := range w.parked {
			parked[d] += n
		}
	}
	for d, n := range depth {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), d)
	}
	for d, n := range dead {
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n), d)
	}
	for d, n := range parked {
		ch <- prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(n), d)
	}
	for d, h := range held {
		v := 0.0
		if h {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.hd, prometheus.GaugeValue, v, d)
	}
}

// rateWindow is how far back a destination's delivery rate looks.
const rateWindow = 60

// rateMeters count this gateway's deliveries (2xx) per destination over
// the last minute, a second at a time, for the destinations page: a rate
// an operator reads without a Prometheus at hand.
type rateMeters struct {
	mu sync.Mutex
	m  map[string]*rateMeter
}

type rateMeter struct {
	secs  [rateWindow]int64 // the second each bucket counts
	count [rateWindow]int
}

func newRateMeters() *rateMeters { return &rateMeters{m: map[string]*rateMeter{}} }

func (r *rateMeters) add(destination string, now time.Time) {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[destination]
	if m == nil {
		m = &rateMeter{}
		r.m[destination] = m
	}
	i := sec % rateWindow
	if m.secs[i] != sec {
		m.secs[i], m.count[i] = sec, 0
	}
	m.count[i]++
}

// rate is the deliveries per second to destination over the last minute.
func (r *rateMeters) rate(destination string, now time.Time) float64 {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m[destination]
	if m == nil {
		return 0
	}
	n := 0
	for i := range m.secs {
		if sec-m.secs[i] < rateWindow {
			n += m.count[i]
		}
	}
	return float64(n) / rateWindow
}
