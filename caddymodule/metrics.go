package caddymodule

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/internal/countcache"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Metric names, exported on Caddy's metrics endpoint (admin /metrics, or a
// `metrics` handler).
const (
	metricReceived      = "webhook_gateway_received_total"
	metricDeliveries    = "webhook_gateway_deliveries_total"
	metricDuration      = "webhook_gateway_delivery_duration_seconds"
	metricDead          = "webhook_gateway_dead_total"
	metricQueueDepth    = "webhook_gateway_queue_depth"
	metricDeadEvents    = "webhook_gateway_dead_events"
	metricBreakerState  = "webhook_gateway_destination_breaker_state"
	countsTTL           = 10 * time.Second
	countsTimeout       = time.Minute
	firstCountsDeadline = 5 * time.Second
)

// gatewayMetrics implements handlers.Observer and delivery.Observer with
// Prometheus collectors. There is one set per process, not per config: Caddy
// gives every config load a fresh registry, and registering the same
// collectors into it keeps the counters monotonic across reloads, which is
// what rate() needs.
type gatewayMetrics struct {
	received   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	dead       *prometheus.CounterVec
	queueDepth prometheus.GaugeFunc
	deadEvents prometheus.GaugeFunc
	stores     *storeCollector
	breaker    *prometheus.GaugeVec
	// The series the alert rules need; see alertmetrics.go.
	syncAnswers *prometheus.CounterVec
	pending     *pendingCollector
	// The per-destination gauges and this gateway's delivery rate; see
	// destinations.go.
	destinations *destinationCollector
	rates        *rateMeters
	// breakerSeen is each destination's last breaker state, so that a
	// pause and a resume are alerted once (see alerts.go).
	breakerMu   sync.Mutex
	breakerSeen map[string]throttle.State
}

var (
	_ handlers.Observer          = (*gatewayMetrics)(nil)
	_ delivery.Observer          = (*gatewayMetrics)(nil)
	_ delivery.BreakerObserver   = (*gatewayMetrics)(nil)
	_ delivery.LaneObserver      = (*gatewayMetrics)(nil)
	_ delivery.DeadEventObserver = (*gatewayMetrics)(nil)
)

// processMetrics is the process-wide set; see gatewayMetrics.
var processMetrics = newGatewayMetrics(live)

func newGatewayMetrics(reg *registry) *gatewayMetrics {
	return &gatewayMetrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricReceived,
			Help: "Provider webhook requests by provider and outcome (accepted, duplicate, unauthorized, invalid, too_large, overloaded, timeout, failed).",
		}, []string{"provider", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricDeliveries,
			Help: "Async delivery attempts and replays by source, destination and result (delivered: 2xx; failed: anything else).",
		}, []string{"source", "destination", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricDuration,
			Help:    "Duration of async delivery attempts and replays, until the backend's answer or the failure.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"source"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricDead,
			Help: "Deliveries given up on by source, destination and reason (gone, attempts_exhausted, max_age).",
		}, []string{"source", "destination", "reason"}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricQueueDepth,
			Help: "Events waiting for async delivery (pending or retrying) in all loaded stores; refreshed at most every 10s.",
		}, func() float64 { return float64(sumCounts(reg, store.StatusPending, store.StatusRetrying)) }),
		deadEvents: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricDeadEvents,
			Help: "Dead events (no further attempt; replay or purge them) in all loaded stores; refreshed at most every 10s.",
		}, func() float64 { return float64(sumCounts(reg, store.StatusDead)) }),
		stores: newStoreCollector(reg),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: metricBreakerState,
			Help: "State of each destination's circuit breaker in this gateway: 0 closed (taking deliveries), 1 open (paused), 2 half-open (paused, a probe out).",
		}, []string{"destination"}),
		syncAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricSyncAnswers,
			Help: "Answers of sync routes to the provider by source and HTTP status code (502: the backend did not accept the event; the provider retries).",
		}, []string{"source", "code"}),
		pending:      newPendingCollector(reg),
		destinations: newDestinationCollector(reg),
		rates:        newRateMeters(),
		breakerSeen:  map[string]throttle.State{},
	}
}

func (m *gatewayMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.received, m.deliveries, m.duration, m.dead, m.queueDepth, m.deadEvents, m.stores, m.breaker, m.syncAnswers, m.pending, m.destinations}
}

// register adds the collectors to a config's registry. Several Handlers of
// one config register the same collectors; the registry answers
// AlreadyRegisteredError, which is fine as long as the collector it holds is
// ours. A different collector under our names (another plugin) is an error,
// since our counts would silently go nowhere.
func (m *gatewayMetrics) register(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range m.collectors() {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case err == nil:
		case errors.As(err, &are) && are.ExistingCollector == c:
		default:
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// Received implements handlers.Observer.
func (m *gatewayMetrics) Received(provider, outcome string) {
	m.received.WithLabelValues(provider, outcome).Inc()
}

// Delivered implements delivery.Observer.
func (m *gatewayMetrics) Delivered(source, destination string, _ int, latency time.Duration) {
	m.deliveries.WithLabelValues(source, destination, "delivered").Inc()
	m.duration.WithLabelValues(source).Observe(latency.Seconds())
	m.rates.add(destination, time.Now())
}

// Failed implements delivery.Observer.
func (m *gatewayMetrics) Failed(source, destination string, _ int, latency time.Duration) {
	m.deliveries.WithLabelValues(source, destination, "failed").Inc()
	m.duration.WithLabelValues(source).Observe(latency.Seconds())
}

// Dead implements delivery.Observer. The reason is one of a fixed set, so
// the label set stays small.
func (m *gatewayMetrics) Dead(source, destination string, reason store.DeadReason) {
	m.dead.WithLabelValues(source, destination, string(reason)).Inc()
}

// DeadEvent implements delivery.DeadEventObserver: it alerts, naming the
// event (see alerts.go).
func (m *gatewayMetrics) DeadEvent(source, id, destination string, reason store.DeadReason) {
	alertDead(source, id, destination, reason)
}

// LaneParked implements delivery.LaneObserver: it alerts (see alerts.go);
// the parked lanes gauge reads the store.
func (m *gatewayMetrics) LaneParked(destination, lane, source, id string) {
	alertLaneParked(destination, lane, source, id)
}

// BreakerState implements delivery.BreakerObserver. The value is
// throttle.State's number, so "> 0" selects the paused destinations. A
// change between closed and paused alerts (see alerts.go).
func (m *gatewayMetrics) BreakerState(destination string, state throttle.State) {
	m.breaker.WithLabelValues(destination).Set(float64(state))
	m.breakerMu.Lock()
	before, seen := m.breakerSeen[destination]
	m.breakerSeen[destination] = state
	m.breakerMu.Unlock()
	switch {
	case !seen:
	case before == throttle.Closed && state != throttle.Closed:
		alertPaused(destination, "breaker")
	case before != throttle.Closed && state == throttle.Closed:
		alertResumed(destination, "breaker")
	}
}

// sumCounts adds up the cached counts of the given statuses over all live
// stores.
func sumCounts(reg *registry, statuses ...store.Status) int {
	total := 0
	for _, ls := range reg.liveStores() {
		// Nothing counted yet: wait a little for the first count rather
		// than report an empty queue that is not.
		counts, _ := ls.counts.Peek(firstCountsDeadline)
		for _, s := range statuses {
			total += counts[s]
		}
	}
	return total
}

// newCountsCache returns the cache a live store's gauges read: a scrape
// never waits for a count except the very first (countcache.Cache.Peek).
func newCountsCache(db store.Store) *countcache.Cache[map[store.Status]int] {
	return countcache.New(countsTTL, countsTimeout, db.Counts)
}
