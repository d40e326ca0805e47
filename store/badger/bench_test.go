package badger

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

var benchEvent = mustJSON(map[string]any{
	"specversion": "1.0", "id": "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd", "source": "/usaepay", "type": "transaction.sale.success",
	"data": map[string]any{"object": map[string]string{"type": "transaction", "key": "1nftvzx7xtcggm3", "pad": strings.Repeat("x", 400)}},
})

// benchRecord is about the size of a real canonical event with its headers.
func benchRecord(id string) *store.Record {
	return &store.Record{
		Source: "/usaepay", ID: id, Provider: "usaepay", Type: "transaction.sale.success",
		Deliveries: []store.Delivery{{Destination: "/usaepay"}}, Event: benchEvent,
		Headers: map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"USAePay-Webhooks/2.0"}},
	}
}

var benchBody = []byte(`{"type":"event","event_type":"transaction.sale.success","event_body":{"object":{"pad":"` + strings.Repeat("y", 300) + `"}}}`)

// BenchmarkInsertDurable measures durable single-event inserts from 32 and
// 128 concurrent writers, with the store's group commit and with Badger
// syncing every commit itself, against inserts that are not synced at all. Run with -benchtime=3s or more: the numbers
// are dominated by fsync latency.
func BenchmarkInsertDurable(b *testing.B) {
	for _, mode := range []struct {
		name    string
		opts    Options
		durable bool
	}{
		{"group", Options{}, true},
		{"syncwrites", Options{SyncWrites: true}, true},
		{"nosync", Options{}, false}, // the ceiling: commits without any sync
	} {
		for _, writers := range []int{32, 128} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				s, _ := openTest(b, mode.opts)
				var n atomic.Int64
				procs := max(1, writers/runtimeGOMAXPROCS())
				b.SetParallelism(procs)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						id := fmt.Sprint("d", n.Add(1))
						res, err := s.Insert(ctx, &store.Ingest{RawBody: benchBody, Records: []*store.Record{benchRecord(id)}}, mode.durable)
						if err != nil || !res[0].Inserted {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
				if st := s.Stats(); st.Syncs > 0 {
					b.ReportMetric(float64(st.Waits)/float64(st.Syncs), "writes/sync")
				}
			})
		}
	}
}

// BenchmarkDedupHit is a duplicate answered from the LRU.
func BenchmarkDedupHit(b *testing.B) {
	s, _ := openTest(b, Options{})
	mustInsert(b, s, &store.Ingest{RawBody: benchBody, Records: []*store.Record{benchRecord("hot")}}, true)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			res, err := s.Insert(ctx, &store.Ingest{RawBody: benchBody, Records: []*store.Record{benchRecord("hot")}}, true)
			if err != nil || res[0].Inserted {
				b.Error("hot duplicate inserted", err)
				return
			}
		}
	})
}

// BenchmarkDedupMiss is a duplicate that is not in the LRU, so the
// insert-if-absent transaction finds it in Badger (not durable: a durable
// duplicate found in Badger also waits for a sync).
func BenchmarkDedupMiss(b *testing.B) {
	s, _ := openTest(b, Options{CacheSize: -1})
	const keys = 10000
	in := &store.Ingest{RawBody: benchBody}
	for i := range keys {
		in.Records = append(in.Records, benchRecord(fmt.Sprint("k", i)))
	}
	mustInsert(b, s, in, true)
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := fmt.Sprint("k", n.Add(1)%keys)
			res, err := s.Insert(ctx, &store.Ingest{RawBody: benchBody, Records: []*store.Record{benchRecord(id)}}, false)
			if err != nil || res[0].Inserted {
				b.Error("duplicate inserted", err)
				return
			}
		}
	})
}

func runtimeGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }

// BenchmarkList pages through 20,000 stored events, 100 per page (one op is
// one page).
func BenchmarkList(b *testing.B) {
	s, _ := openTest(b, Options{})
	for batch := range 40 {
		in := &store.Ingest{RawBody: benchBody}
		for i := range 500 {
			in.Records = append(in.Records, benchRecord(fmt.Sprint("l", batch, "-", i)))
		}
		mustInsert(b, s, in, false)
	}
	ctx := context.Background()
	cursor := ""
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rs, next, err := s.List(ctx, store.Filter{Cursor: cursor})
		if err != nil || len(rs) == 0 {
			b.Fatal(len(rs), err)
		}
		cursor = next
	}
}

// BenchmarkDeliveryCycle is the store's share of one async delivery: claim
// one due event and record its delivered attempt, for a small event and for
// one with a 12 KB body and canonical event (whose payload the transition
// must not read back).
func BenchmarkDeliveryCycle(b *testing.B) {
	for _, size := range []int{1 << 10, 12 << 10} {
		b.Run(fmt.Sprintf("body=%dKB", size>>10), func(b *testing.B) {
			s, _ := openTest(b, Options{GCInterval: -1})
			ctx := context.Background()
			event := mustJSON(map[string]string{"id": "x", "pad": strings.Repeat("e", size)})
			body := []byte(strings.Repeat("b", size))
			const stock = 20000
			for i := range stock {
				r := benchRecord(fmt.Sprint("c", i))
				r.Event = event
				mustInsert(b, s, &store.Ingest{RawBody: body, Records: []*store.Record{r}}, false)
			}
			now := time.Now().Add(time.Second)
			var done atomic.Int64
			b.SetParallelism(16) // 32 workers on 2 cores, as the engine runs: fsyncs are shared
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var c []store.Claimed // claimed, not yet recorded
				for pb.Next() {
					if done.Add(1) > stock {
						b.Error("ran out of due events; raise stock")
						return
					}
					for tries := 0; len(c) == 0; tries++ {
						// Concurrent claimers pass over each other's
						// candidates, so a claim may come back short.
						got, err := s.Claim(ctx, "w", []string{"/usaepay"}, now, time.Minute, 8)
						if err != nil || tries == 1000 {
							b.Error("claim:", err)
							return
						}
						c = got
					}
					if err := s.RecordAttempt(ctx, "/usaepay", c[0].Record.ID, "/usaepay", "w", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
						b.Error(err)
						return
					}
					c = c[1:]
				}
			})
		})
	}
}

// BenchmarkDeliveryCycleLanes is BenchmarkDeliveryCycle with the 1 KB event
// unordered and ordered over 1,000 lanes (a backlog of 20 deliveries per
// lane), with 16 claimers as the engine's default workers: each recorded
// head lets its successor go, which the next claims must find.
func BenchmarkDeliveryCycleLanes(b *testing.B) {
	for _, lanes := range []int{0, 1000} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			s, _ := openTest(b, Options{GCInterval: -1})
			ctx := context.Background()
			const stock = 20000
			for batch := range stock / 500 {
				in := &store.Ingest{RawBody: benchBody}
				for i := range 500 {
					n := batch*500 + i
					r := benchRecord(fmt.Sprint("c", n))
					if lanes > 0 {
						r.Deliveries[0].Lane = fmt.Sprint("txn-", n%lanes)
					}
					in.Records = append(in.Records, r)
				}
				mustInsert(b, s, in, false)
			}
			now := time.Now().Add(time.Second)
			var done, claims atomic.Int64
			b.SetParallelism(8) // 16 claimers on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var c []store.Claimed // claimed, not yet recorded
				for pb.Next() {
					if done.Add(1) > stock {
						b.Error("ran out of due events; raise stock")
						return
					}
					for tries := 0; len(c) == 0; tries++ {
						got, err := s.Claim(ctx, "w", []string{"/usaepay"}, now, time.Minute, 1)
						claims.Add(1)
						if err != nil || tries == 100000 {
							b.Error("claim:", err)
							return
						}
						c = got
					}
					if err := s.RecordAttempt(ctx, "/usaepay", c[0].Record.ID, "/usaepay", "w", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
						b.Error(err)
						return
					}
					c = c[1:]
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(claims.Load())/float64(b.N), "claims/delivery")
		})
	}
}
