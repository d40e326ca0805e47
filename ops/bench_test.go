package ops_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// BenchmarkCountBySource is the cost of one overview refresh's by-source
// count over the console's bound of 5,000 events.
func BenchmarkCountBySource(b *testing.B) {
	tg := newTarget(b)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		rec := &store.Record{Source: fmt.Sprint("/s", i%3), ID: fmt.Sprint("id-", i), Provider: "usaepay", Type: "ach.settled",
			Deliveries: []store.Delivery{{Destination: "d"}}, ReceivedAt: at.Add(time.Duration(i) * time.Millisecond),
			Event: []byte(`{"specversion":"1.0","id":"x","subject":"s","data":{"object":{"key":"0123456789abcdef","amount":"5.00"}}}`)}
		if _, err := tg.Store.Insert(context.Background(), &store.Ingest{RawBody: []byte(`{"event_body":{}}`), Records: []*store.Record{rec}}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, n, _, err := ops.CountBySource(context.Background(), tg, 5000); err != nil || n != 5000 {
			b.Fatal(n, err)
		}
	}
}
