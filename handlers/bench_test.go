package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
					rec := httptest.NewRecorder()
					if err := g.ServeHTTP(rec, req, ok); err != nil {
						b.Error(err)
						return
					}
					if rec.Code != want {
						b.Errorf("answer %d: %s", rec.Code, rec.Body)
						return
					}
				}
			})
		})
	}
}

func BenchmarkGatewaySync(b *testing.B)  { benchmarkGateway(b, Sync) }
func BenchmarkGatewayAsync(b *testing.B) { benchmarkGateway(b, Async) }
