package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
)

// BenchmarkDeliver is the store's side of delivering a backlog: 32 workers
// claim due deliveries (up to 4 at a time) and record each attempt
// delivered, until b.N deliveries are done. The backlog is stored before
// the timer starts; lanes=1000 gives every delivery one of 1,000 lanes.
func BenchmarkDeliver(b *testing.B) {
	for _, lanes := range []int{0, 1000} {
		b.Run(fmt.Sprint("lanes=", lanes), func(b *testing.B) {
			s := openShared(b, 1, postgres.Options{})[0]
			ctx := context.Background()
			body := []byte(`{"specversion":"1.0","data":{}}`)
			const batch = 500
			for i := 0; i < b.N; i += batch {
				in := &store.Ingest{RawBody: body}
				for j := i; j < min(i+batch, b.N); j++ {
					d := store.Delivery{Destination: "/bench"}
					if lanes > 0 {
						d.Lane = fmt.Sprint("k", j%lanes)
					}
					in.Records = append(in.Records, &store.Record{Source: "/bench", ID: fmt.Sprint("e", j),
						Provider: "p", Type: "t", Event: body, Deliveries: []store.Delivery{d}})
				}
				if _, err := s.Insert(ctx, in, true); err != nil {
					b.Fatal(err)
				}
			}
			var done atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprint("w", w)
					for done.Load() < int64(b.N) {
						got, err := s.Claim(ctx, owner, []string{"/bench"}, time.Now(), time.Minute, 4)
						if err != nil {
							b.Error(err)
							return
						}
						for _, c := range got {
							a := store.Attempt{Number: 1, At: time.Now(), Status: 200}
							if err := s.RecordAttempt(ctx, c.Record.Source, c.Record.ID, c.Destination, owner, a, store.Delivered()); err != nil {
								b.Error(err)
								return
							}
							done.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
