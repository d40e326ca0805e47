package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Metric names the alert rules (docs/ops/alerts.yml) need beyond the
// counters of metrics.go.
const (
	metricOldestPending = "webhook_gateway_oldest_pending_age_seconds"
	metricSyncAnswers   = "webhook_gateway_sync_answers_total"
)

// pendingCollector reports, per source, how long the oldest event waiting
// for delivery has waited since it was received: 0 for an async route's
// source with nothing waiting, and also a source with waiting events but no
// loaded route (events nothing will deliver). The age is computed at scrape
// time from the cached receipt time, so it keeps growing between
// refreshes of the cache.
type pendingCollector struct {
	reg    *registry
	oldest *prometheus.Desc
	now    func() time.Time
}

var _ prometheus.Collector = (*pendingCollector)(nil)

func newPendingCollector(reg *registry) *pendingCollector {
	return &pendingCollector{
		reg: reg,
		oldest: prometheus.NewDesc(metricOldestPending,
			"Age in seconds of the oldest event waiting for async delivery (pending or retrying), by source; 0 when none waits. The receipt time is refreshed at most every 10s.",
			[]string{"source"}, nil),
		now: time.Now,
	}
}

// Describe implements prometheus.Collector.
func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.oldest }

// Collect implements prometheus.Collector.
func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	ages := map[string]float64{}
	for name, ls := range c.reg.storesByName() {
		w, ok := ls.oldest.Peek(firstCountsDeadline)
		if !ok {
			// Not found yet: no value rather than a 0 that may be
			// false.
			continue
		}
		for _, source := range c.reg.asyncSources(name) {
			ages[source] = max(ages[source], 0)
		}
		for source, t := range w.bySource {
			ages[source] = max(ages[source], now.Sub(t).Seconds())
		}
	}
	for source, age := range ages {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, source)
	}
}

// asyncSources lists the sources of the live async routes on the store
// named name.
func (r *registry) asyncSources(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s, rs := range r.routes {
		for _, x := range rs {
			if x.store == name && x.mode == handlers.Async {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// watch creates a route's series at zero when it is loaded, so that the
// first event to go dead or the first sync failure is an increase from 0
// that rate() and increase() see, rather than a series born at 1 that they
// cannot tell from one that was always there.
func (m *gatewayMetrics) watch(source, provider string, mode handlers.Mode) {
	if provider != "" && provider != normalize.Auto {
		m.received.WithLabelValues(provider, handlers.OutcomeAccepted)
	}
	if mode == handlers.Sync {
		m.syncAnswers.WithLabelValues(source, strconv.Itoa(http.StatusOK))
		m.syncAnswers.WithLabelValues(source, strconv.Itoa(http.StatusBadGateway))
		return
	}
}

// watchDestination creates a destination's series at zero when its route
// loads, for the same reason as watch.
func (m *gatewayMetrics) watchDestination(source, destination string) {
	m.deliveries.WithLabelValues(source, destination, "delivered")
	m.deliveries.WithLabelValues(source, destination, "failed")
	for _, reason := range []store.DeadReason{store.DeadGone, store.DeadAttemptsExhausted, store.DeadMaxAge} {
		m.dead.WithLabelValues(source, destination, string(reason))
	}
}

// syncAnswer records the status a sync route answers its provider with.
type syncAnswer struct {
	caddyhttp.ResponseWriterWrapper
	status int
}

func (w *syncAnswer) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *syncAnswer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriterWrapper.Write(b)
}

// syncAnswersOf returns the counter of the sync answers of source, by status
// code, resolved once when a route loads rather than on each request.
func (m *gatewayMetrics) syncAnswersOf(source string) *prometheus.CounterVec {
	return m.syncAnswers.MustCurryWith(prometheus.Labels{"source": source})
}

// serveSync serves a sync route's request and counts its answer by status
// in answers (see syncAnswersOf): a 502 is the backend refusing or missing
// an event, which the provider will send again.
func serveSync(answers *prometheus.CounterVec, gw *handlers.Gateway, w http.ResponseWriter, r *http.Request, next handlers.Next) error {
	sw := &syncAnswer{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := gw.ServeHTTP(sw, r, next)
	status := sw.status
	if status == 0 {
		// Nothing written: Caddy answers the error, or 200 for none.
		status = http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var he caddyhttp.HandlerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
		}
	}
	answers.WithLabelValues(strconv.Itoa(status)).Inc()
	return err
}
