package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// paymentBody is a payment gateway event of about size bytes with a fresh
// event id, padded with a note so both sizes take the same path.
func paymentBody(b *testing.B, size int) []byte {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	head := `{"type":"event","event_triggered":"2021-04-07 15:14:26","event_type":"transaction.sale.success",` +
		`"event_body":{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":"1nftvzx7xtcggm3",` +
		`"amount_detail":{"amount":"5.00"},"description":"`
	tail := `"}},"event_id":"` + hex.EncodeToString(raw) + `"}`
	pad := max(size-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// benchmarkGateway drives ServeHTTP in process, 16 requests per CPU at once
// (32 on two CPUs, the load benchmark's concurrency), each with a new event
// on a real Badger store in a temporary directory: the gateway's own cost
// without HTTP or a real backend.
func benchmarkGateway(b *testing.B, mode Mode) {
	for _, size := range []int{1 << 10, 12 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			benchmarkRequests(b, mode, size, nil)
		})
	}
}

// benchmarkRequests is benchmarkGateway's loop for one body size; each
// request runs under a span of start when it is not nil, as under Caddy's
// tracing handler.
func benchmarkRequests(b *testing.B, mode Mode, size int, start func(context.Context) (context.Context, trace.Span)) {
	g, _ := newGateway(b, mode, "usaepay")
	ok := func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	want := http.StatusAccepted
	if mode == Sync {
		want = http.StatusOK
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := paymentBody(b, size)
			req := httptest.NewRequest(http.MethodPost, "/hooks/usaepay", strings.NewReader(string(body)))
			req.Header.Set(tokenHeader, token)
			var span trace.Span
			if start != nil {
				var ctx context.Context
				ctx, span = start(req.Context())
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			if err := g.ServeHTTP(rec, req, ok); err != nil {
				b.Error(err)
				return
			}
			if span != nil {
				span.End()
			}
			if rec.Code != want {
				b.Errorf("answer %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
}

func BenchmarkGatewaySync(b *testing.B)  { benchmarkGateway(b, Sync) }
func BenchmarkGatewayAsync(b *testing.B) { benchmarkGateway(b, Async) }

// BenchmarkTracing is a 1 KB event's cost on a route without tracing (off),
// under a span that does not record (unsampled: Caddy's tracing with its
// sampler saying no), and under a recording span whose spans go nowhere
// (on: the gateway's spans without an exporter's cost). off allocates as
// much as BenchmarkGateway* did before the gateway had spans.
func BenchmarkTracing(b *testing.B) {
	recording := sdktrace.NewTracerProvider()
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() {
		_ = recording.Shutdown(context.Background())
		_ = unsampled.Shutdown(context.Background())
	})
	under := func(tp trace.TracerProvider) func(context.Context) (context.Context, trace.Span) {
		return func(ctx context.Context) (context.Context, trace.Span) {
			return tp.Tracer("caddy").Start(ctx, "handler", trace.WithSpanKind(trace.SpanKindServer))
		}
	}
	for _, mode := range []Mode{Sync, Async} {
		b.Run(string(mode)+"/off", func(b *testing.B) { benchmarkRequests(b, mode, 1<<10, nil) })
		b.Run(string(mode)+"/unsampled", func(b *testing.B) { benchmarkRequests(b, mode, 1<<10, under(unsampled)) })
		b.Run(string(mode)+"/on", func(b *testing.B) { benchmarkRequests(b, mode, 1<<10, under(recording)) })
	}
}

// couponBatch is the loyalty platform's campaign.coupon_expiration as the
// open-source sender posts it: every expiring coupon in one request.
func couponBatch(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"type":"campaign.coupon_expiration","data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"customerId":"00000000-0000-474c-b092-%012d","customerEmail":"c%d@example.com","coupon":"WINTER-%08d","couponExpiresAt":"2026-12-31T23:59:59+01:00","couponStatus":"active"}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkCouponBatch stores and acknowledges one loyalty batch on an
// async route (real Badger, fsync): the sender gives the whole request one
// second. Each iteration is a new batch (the customers differ), so dedup
// finds nothing. heap-MB/op is the peak heap growth the batch caused, as
// a multiple of the body in body-x; the collector runs at GOGC=10 meanwhile,
// so that the heap tracks what is live rather than garbage awaiting a
// collection.
func BenchmarkCouponBatch(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			g, _ := newGateway(b, Async, "openloyalty")
			g.MaxBodySize = 64 << 20
			body := couponBatch(n)
			b.SetBytes(int64(len(body)))
			var peak uint64
			defer debug.SetGCPercent(debug.SetGCPercent(10))
			for i := 0; b.Loop(); i++ {
				// Another customer set each time: the same batch would be a
				// duplicate inside the dedup window.
				batch := []byte(strings.ReplaceAll(string(body), "474c", fmt.Sprintf("%04x", i%65536)))
				req := httptest.NewRequest(http.MethodPost, "/hooks/openloyalty", strings.NewReader(string(batch)))
				req.Header.Set(tokenHeader, token)
				rec := httptest.NewRecorder()
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				stop := watchHeap(&peak, before.HeapAlloc)
				if err := g.ServeHTTP(rec, req, nil); err != nil {
					b.Fatal(err)
				}
				stop()
				if rec.Code != http.StatusAccepted {
					b.Fatalf("answer %d: %.200s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "heap-MB/op")
			b.ReportMetric(float64(peak)/float64(len(body)), "body-x")
		})
	}
}

// watchHeap samples the heap every millisecond until stop is called and
// keeps in *peak the largest growth over base seen in any run.
func watchHeap(peak *uint64, base uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > *peak {
				*peak = ms.HeapAlloc - base
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
