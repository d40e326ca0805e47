package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// BenchmarkDrainLanes is the engine draining a backlog stored before it
// starts (nothing wakes it but its own work and the poll, at the default
// 1 s), with the default 16 workers, to a loopback backend: 2,000 events
// unordered, and over 1,000 and 100 lanes (2 and 20 deep). One op is one
// drained backlog; deliveries/s is the figure to compare.
func BenchmarkDrainLanes(b *testing.B) {
	const events = 2000
	for _, lanes := range []int{0, 1000, 100} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			// The backend closes drained when the round's last event
			// arrives, so the timing ends on the event itself.
			var got atomic.Int64
			var drained chan struct{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got.Add(1) == events {
					close(drained)
				}
			}))
			defer srv.Close()
			var elapsed time.Duration
			claims := 0
			for round := range b.N {
				st, err := badger.Open(b.TempDir(), badger.Options{GCInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				in := &store.Ingest{RawBody: []byte("[]")}
				now := time.Now()
				for i := range events {
					id := fmt.Sprint("r", round, "-", i)
					ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": testSource, "type": "t"})
					d := store.Delivery{Destination: testSource}
					if lanes > 0 {
						d.Lane = fmt.Sprint("txn-", i%lanes)
					}
					in.Records = append(in.Records, &store.Record{Source: testSource, ID: id, Provider: "usaepay", Type: "t",
						ReceivedAt: now, Event: ev, BatchSize: events, BatchIndex: i, Retention: time.Hour,
						Deliveries: []store.Delivery{d}})
				}
				if _, err := st.Insert(context.Background(), in, true); err != nil {
					b.Fatal(err)
				}
				w := watchClaims(st, DefaultWorkers)
				e, err := New(Config{Store: w, Destination: testSource, Upstreams: []string{srv.URL},
					Breaker: throttle.BreakerConfig{Failures: 1 << 30}, Logger: zap.NewNop()})
				if err != nil {
					b.Fatal(err)
				}
				got.Store(0)
				drained = make(chan struct{})
				start := time.Now()
				if err := e.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				select {
				case <-drained:
				case <-time.After(2 * time.Minute):
					b.Fatalf("drained %d of %d events in 2 minutes", got.Load(), events)
				}
				elapsed += time.Since(start)
				claims += w.passes()
				if err := e.Stop(); err != nil {
					b.Fatal(err)
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events*b.N)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(claims)/float64(events*b.N), "claims/delivery")
		})
	}
}
