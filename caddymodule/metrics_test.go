package caddymodule

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// gathered returns the metric families of reg by name.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value finds the sample of fam whose labels include want.
func value(fam *dto.MetricFamily, want map[string]string) (float64, bool) {
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsSurviveReloadRegistration(t *testing.T) {
	m := newGatewayMetrics(newRegistry())
	first := prometheus.NewPedanticRegistry()
	// Two Handlers of one config register the same collectors.
	if err := m.register(first); err != nil {
		t.Fatal(err)
	}
	if err := m.register(first); err != nil {
		t.Fatalf("second handler of the same config: %v", err)
	}
	m.Received("usaepay", handlers.OutcomeAccepted)

	// A reload: a fresh registry per config, same collectors, so the
	// counters carry on instead of restarting at zero.
	second := prometheus.NewPedanticRegistry()
	if err := m.register(second); err != nil {
		t.Fatalf("after reload: %v", err)
	}
	m.Received("usaepay", handlers.OutcomeAccepted)
	got, ok := value(gathered(t, second)[metricReceived], map[string]string{"provider": "usaepay", "outcome": "accepted"})
	if !ok || got != 2 {
		t.Fatalf("received after reload = %v (found %v), want 2", got, ok)
	}

	if err := m.register(nil); err != nil {
		t.Fatalf("no registry (bare context): %v", err)
	}
}

func TestMetricsRefuseForeignCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricReceived, Help: "someone else's"},
		[]string{"provider", "outcome"}))
	if err := newGatewayMetrics(newRegistry()).register(reg); err == nil {
		t.Fatal("registering over another collector of the same name should fail")
	}
}

func TestMetricsObservers(t *testing.T) {
	m := newGatewayMetrics(newRegistry())
	reg := prometheus.NewPedanticRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	m.Delivered("/usaepay", "ledger", 200, 30*time.Millisecond)
	m.Delivered("/usaepay", "ledger", 204, 40*time.Millisecond)
	m.Failed("/usaepay", "ledger", 503, time.Second)
	m.Failed("/usaepay", "ledger", 0, 5*time.Second)
	m.Dead("/usaepay", "ledger", store.DeadAttemptsExhausted)
	m.Dead("/usaepay", "ledger", store.DeadGone)
	m.Dead("/usaepay", "ledger", store.DeadMaxAge)
	m.BreakerState("ledger", throttle.Open)
	m.BreakerState("crm", throttle.Open)
	m.BreakerState("crm", throttle.Closed)

	fams := gathered(t, reg)
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{metricDeliveries, map[string]string{"source": "/usaepay", "result": "delivered"}, 2},
		{metricDeliveries, map[string]string{"source": "/usaepay", "result": "failed"}, 2},
		{metricDuration, map[string]string{"source": "/usaepay"}, 4},
		{metricDead, map[string]string{"source": "/usaepay", "reason": "attempts_exhausted"}, 1},
		{metricDead, map[string]string{"source": "/usaepay", "reason": "gone"}, 1},
		{metricDead, map[string]string{"source": "/usaepay", "reason": "max_age"}, 1},
		{metricQueueDepth, nil, 0},
		{metricDeadEvents, nil, 0},
		{metricBreakerState, map[string]string{"destination": "ledger"}, 1},
		{metricBreakerState, map[string]string{"destination": "crm"}, 0},
	} {
		got, ok := value(fams[c.metric], c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.metric, c.labels, got, ok, c.want)
		}
	}
}

func TestMetricsStoreGaugesAreCached(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(dir, badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := newRegistry()
	defer r.add(dir, db, []string{"/usaepay"}, handlers.Async, nil)()
	m := newGatewayMetrics(r)
	reg := prometheus.NewPedanticRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	insert := func(id string, s store.Status) {
		storeIn(t, db, &store.Record{Source: "/usaepay", ID: id, Provider: "usaepay", Type: "x", Event: []byte(`{}`)}, s)
	}
	for i := range 3 {
		insert(fmt.Sprintf("p%d", i), store.StatusPending)
	}
	insert("r", store.StatusRetrying)
	insert("d", store.StatusDead)

	gauges := func() (float64, float64) {
		fams := gathered(t, reg)
		q, _ := value(fams[metricQueueDepth], nil)
		d, _ := value(fams[metricDeadEvents], nil)
		return q, d
	}
	// The first scrape waits for a count.
	if q, d := gauges(); q != 4 || d != 1 {
		t.Fatalf("queue %v dead %v, want 4 and 1", q, d)
	}
	// The write path: one durable insert, one sync covering it (the
	// events above, and their attempts, were written durably too).
	before := gathered(t, reg)
	syncs0, _ := value(before[metricStoreSyncs], map[string]string{"store": dir})
	batches0, _ := value(before[metricWriteBatches], map[string]string{"store": dir})
	batched0, _ := value(before[metricBatchedWrites], map[string]string{"store": dir})
	waits0 := before[metricStoreSyncBatch].GetMetric()[0].GetHistogram()
	insertDurable := &store.Record{Source: "/usaepay", ID: "durable", Provider: "usaepay", Type: "x", Event: []byte(`{}`)}
	if _, err := db.Insert(context.Background(), &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{insertDurable}}, true); err != nil {
		t.Fatal(err)
	}
	fams := gathered(t, reg)
	if n, ok := value(fams[metricStoreSyncs], map[string]string{"store": dir}); !ok || n != syncs0+1 {
		t.Fatalf("syncs %v (%v), want %v", n, ok, syncs0+1)
	}
	if h := fams[metricStoreSyncBatch].GetMetric()[0].GetHistogram(); h.GetSampleCount() != waits0.GetSampleCount()+1 || h.GetSampleSum() != waits0.GetSampleSum()+1 {
		t.Fatalf("batch histogram %v, before %v", h, waits0)
	}
	// One insert: one write transaction of one write.
	if n, ok := value(fams[metricWriteBatches], map[string]string{"store": dir}); !ok || n != batches0+1 {
		t.Fatalf("write batches %v (%v), want %v", n, ok, batches0+1)
	}
	if n, ok := value(fams[metricBatchedWrites], map[string]string{"store": dir}); !ok || n != batched0+1 {
		t.Fatalf("batched writes %v (%v), want %v", n, ok, batched0+1)
	}
	if low, ok := value(fams[metricStoreLowOnSpace], nil); !ok || low != 0 {
		t.Fatalf("low on space %v (%v)", low, ok)
	}
	// Within the TTL a scrape does not count again.
	insert("d2", store.StatusDead)
	if _, d := gauges(); d != 1 {
		t.Fatalf("dead = %v within the TTL, want the cached 1", d)
	}
	// Once stale, a scrape answers at once and refreshes in the background.
	r.liveStores()[0].counts.Expire()
	testwait.For(t, "the dead gauge refreshed to 2", func() bool {
		_, d := gauges()
		return d == 2
	})
}
