package caddymodule

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

func TestMetricsOldestPendingAge(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(dir, badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := newRegistry()
	defer r.add(dir, db, []string{"/usaepay"}, handlers.Async, nil)()
	defer r.add(dir, db, []string{"/sublytics"}, handlers.Sync, nil)()
	m := newGatewayMetrics(r)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.pending.now = func() time.Time { return now }
	reg := prometheus.NewPedanticRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	ages := func() map[string]float64 {
		out := map[string]float64{}
		for _, s := range gathered(t, reg)[metricOldestPending].GetMetric() {
			out[s.GetLabel()[0].GetValue()] = s.GetGauge().GetValue()
		}
		return out
	}
	// An async route with nothing waiting is 0; a sync route has no
	// queue, so no series.
	if got := ages(); len(got) != 1 || got["/usaepay"] != 0 {
		t.Fatalf("empty store: %v, want only /usaepay at 0", got)
	}

	insert := func(source, id string, s store.Status, age time.Duration) {
		storeIn(t, db, &store.Record{Source: source, ID: id, Provider: "usaepay", Type: "x",
			ReceivedAt: now.Add(-age), Event: []byte(`{}`)}, s)
	}
	// More than a page of pending events, so the oldest is on the last
	// page; a retrying one older still; older delivered and dead events
	// that are not waiting; and a source no loaded route serves.
	for i := range store.MaxListLimit + 5 {
		insert("/usaepay", fmt.Sprintf("p%d", i), store.StatusPending, time.Duration(i+1)*time.Second)
	}
	insert("/usaepay", "r", store.StatusRetrying, time.Hour)
	insert("/usaepay", "delivered", store.StatusDelivered, 48*time.Hour)
	insert("/usaepay", "dead", store.StatusDead, 72*time.Hour)
	insert("/orphan", "o", store.StatusPending, 90*time.Second)

	ls := r.liveStores()[0]
	// Within the cache's period a scrape reuses the last receipt times.
	if got := ages(); got["/usaepay"] != 0 {
		t.Fatalf("within the period: %v, want the cached 0", got)
	}
	ls.counts.Expire()
	testwait.For(t, "the counts to see the new events", func() bool {
		c, _ := ls.counts.Peek(firstCountsDeadline)
		return c[store.StatusPending] == store.MaxListLimit+6
	})
	ls.oldest.Expire()
	testwait.For(t, "the ages to refresh", func() bool { return ages()["/usaepay"] != 0 })
	want := map[string]float64{"/usaepay": 3600, "/orphan": 90}
	if got := ages(); len(got) != len(want) || got["/usaepay"] != want["/usaepay"] || got["/orphan"] != want["/orphan"] {
		t.Fatalf("ages %v, want %v", got, want)
	}
	// The age grows with the clock between refreshes.
	now = now.Add(time.Minute)
	if got := ages()["/usaepay"]; got != 3660 {
		t.Fatalf("a minute later: %v, want 3660", got)
	}

	// Pending only: the oldest pending event, found on the last page.
	if n, err := db.Purge(context.Background(), store.Filter{Source: "/usaepay", Status: store.StatusRetrying}); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	ls.counts.Expire()
	ls.oldest.Expire()
	want1 := float64(store.MaxListLimit+5) + 60
	testwait.For(t, "the age without the retrying event", func() bool { return ages()["/usaepay"] == want1 })
}

func TestMetricsWatchAndSyncAnswers(t *testing.T) {
	m := newGatewayMetrics(newRegistry())
	reg := prometheus.NewPedanticRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	m.watch("/usaepay", "usaepay", handlers.Async)
	m.watchDestination("/usaepay", "/usaepay")
	m.watch("/sublytics", "sublytics", handlers.Sync)
	m.watch("/auto", "auto", handlers.Async)
	fams := gathered(t, reg)
	// Every series a rule takes the increase of is there at 0 from the
	// start.
	for _, c := range []struct {
		metric string
		labels map[string]string
	}{
		{metricDead, map[string]string{"source": "/usaepay", "reason": "gone"}},
		{metricDead, map[string]string{"source": "/usaepay", "reason": "attempts_exhausted"}},
		{metricDead, map[string]string{"source": "/usaepay", "reason": "max_age"}},
		{metricDeliveries, map[string]string{"source": "/usaepay", "result": "failed"}},
		{metricDeliveries, map[string]string{"source": "/usaepay", "result": "delivered"}},
		{metricSyncAnswers, map[string]string{"source": "/sublytics", "code": "502"}},
		{metricSyncAnswers, map[string]string{"source": "/sublytics", "code": "200"}},
		{metricReceived, map[string]string{"provider": "usaepay", "outcome": "accepted"}},
		{metricReceived, map[string]string{"provider": "sublytics", "outcome": "accepted"}},
	} {
		if got, ok := value(fams[c.metric], c.labels); !ok || got != 0 {
			t.Errorf("%s%v = %v (found %v), want 0", c.metric, c.labels, got, ok)
		}
	}
	// A sync route has no async series, an auto route no provider.
	if _, ok := value(fams[metricDead], map[string]string{"source": "/sublytics"}); ok {
		t.Error("a sync route has dead_total series")
	}
	if _, ok := value(fams[metricReceived], map[string]string{"provider": "auto"}); ok {
		t.Error("an auto route has a received series for provider auto")
	}
}

// BenchmarkOldestWaiting finds the oldest waiting delivery in a Badger
// store of 50,000 settled events (unmatched: they have no delivery) and
// 1,000 waiting ones, against counting the same store (what the
// queue-depth gauge does on the same schedule).
func BenchmarkOldestWaiting(b *testing.B) {
	dir := b.TempDir()
	db, err := badger.Open(dir, badger.Options{Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	event := make([]byte, 1024)
	for i := range event {
		event[i] = 'x'
	}
	event[0], event[len(event)-1] = '"', '"'
	start := time.Now().Add(-time.Hour)
	n := 0
	for batch := range 51 {
		in := &store.Ingest{RawBody: []byte(`{}`)}
		for range 1000 {
			var ds []store.Delivery
			if batch == 25 {
				ds = []store.Delivery{{Destination: "/usaepay"}}
			}
			in.Records = append(in.Records, &store.Record{Source: "/usaepay", ID: fmt.Sprint(n), Provider: "usaepay", Type: "x",
				Deliveries: ds, ReceivedAt: start.Add(time.Duration(n) * time.Millisecond), Event: event})
			n++
		}
		if _, err := db.Insert(context.Background(), in, false); err != nil {
			b.Fatal(err)
		}
	}
	counts := newCountsCache(db)
	if c, _ := counts.Peek(firstCountsDeadline); c[store.StatusPending] != 1000 {
		b.Fatalf("counts %v", c)
	}
	b.Run("oldest", func(b *testing.B) {
		for b.Loop() {
			w, err := waitingIn(context.Background(), db)
			if err != nil || !w.bySource["/usaepay"].Equal(start.Add(25000*time.Millisecond)) || !w.byDestination["/usaepay"].Equal(start.Add(25000*time.Millisecond)) {
				b.Fatalf("%+v %v", w, err)
			}
		}
	})
	b.Run("counts", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Counts(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
