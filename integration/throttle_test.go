package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// clockedBackend answers every request with the status the test sets and
// keeps when each answer went out, by event id.
type clockedBackend struct {
	*httptest.Server
	up atomic.Bool

	mu   sync.Mutex
	down int                    // requests answered 503
	ok   map[string][]time.Time // 2xx answers by event id
	oks  []time.Time            // every 2xx answer, in order
}

func newClockedBackend(t *testing.T) *clockedBackend {
	b := &clockedBackend{ok: map[string][]time.Time{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ID string `json:"id"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &ev)
		id := ev.ID
		up := b.up.Load()
		b.mu.Lock()
		if up {
			now := time.Now()
			b.ok[id] = append(b.ok[id], now)
			b.oks = append(b.oks, now)
		} else {
			b.down++
		}
		b.mu.Unlock()
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *clockedBackend) counts() (down, ok int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down, len(b.oks)
}

// throttleSite is one async route whose destination has the given rate,
// breaker and retry settings.
func throttleSite(upstream, settings string) string {
	return fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			destination ledger {
				upstream %s/events
				%s
			}
		}
	}
}
`, upstream, settings)
}

// postEvents accepts n payment events and returns their ids.
func postEvents(t *testing.T, gw *testcaddy.Instance, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		id, body := paymentEvent(t)
		if code, answer := post(t, gw.BaseURL()+"/hooks", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("posting event %d: %d %v", len(ids), code, answer)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkOnce fails unless every id was answered 2xx exactly once.
func (b *clockedBackend) checkOnce(t *testing.T, ids []string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		if n := len(b.ok[id]); n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

// TestRateDrainsBacklog: a backlog built while the backend was down goes
// out at the destination's rate once it is back: 600 events at 100/s, the
// rate measured over the drain after the first burst, within 10%.
func TestRateDrainsBacklog(t *testing.T) {
	const events, perSecond, burst = 600, 100, 10
	be := newClockedBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(throttleSite(be.URL, `rate 100/s
				breaker {
					failures 1
					cooldown 200ms
					max_cooldown 500ms
				}
				retry {
					attempts 1000
					initial_delay 50ms
					max_delay 200ms
				}`))
	ids := postEvents(t, gw, events)
	be.up.Store(true)
	testwait.For(t, "the backlog delivered", func() bool { _, ok := be.counts(); return ok >= events })
	be.checkOnce(t, ids)

	be.mu.Lock()
	oks := append([]time.Time(nil), be.oks...)
	down := be.down
	be.mu.Unlock()
	// The probe and the burst go at once; the rest at the rate.
	from := burst + 1
	took := oks[len(oks)-1].Sub(oks[from])
	rate := float64(len(oks)-1-from) / took.Seconds()
	t.Logf("%d events: %d refused while down, drained %d in %s: %.1f/s (configured %d/s)",
		events, down, len(oks)-1-from, took.Round(time.Millisecond), rate, perSecond)
	if rate < perSecond*0.9 || rate > perSecond*1.1 {
		t.Errorf("drained at %.1f/s, want %d/s ±10%%", rate, perSecond)
	}
}

// TestBreakerOutageKillsNoEvent: a backend down for three times the
// events' max_age loses none of them; while it is down it sees the
// attempts before the breaker opens and one probe per cooldown, no more;
// and once it is back the backlog goes out, each event once.
func TestBreakerOutageKillsNoEvent(t *testing.T) {
	const (
		events   = 50
		workers  = 4
		failures = 2
		cooldown = 200 * time.Millisecond
		maxAge   = 2 * time.Second
	)
	be := newClockedBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(throttleSite(be.URL, fmt.Sprintf(`workers %d
				breaker {
					failures %d
					cooldown %s
					max_cooldown %s
				}
				retry {
					attempts 3
					initial_delay 100ms
					max_delay 1s
					max_age %s
				}`, workers, failures, cooldown, cooldown, maxAge)))
	downFrom := time.Now()
	ids := postEvents(t, gw, events)
	testwait.For(t, "the destination paused", func() bool {
		state, ok := scrape(t, gw, "webhook_gateway_destination_breaker_state", `destination="ledger"`)
		return ok && state > 0
	})
	testwait.For(t, "an outage three times max_age", func() bool { return time.Since(downFrom) > 3*maxAge })
	be.up.Store(true)
	down := time.Since(downFrom)
	refused, _ := be.counts()

	testwait.For(t, "every event delivered", func() bool { return be.allOK(ids) })
	be.checkOnce(t, ids)
	if state, ok := scrape(t, gw, "webhook_gateway_destination_breaker_state", `destination="ledger"`); !ok || state != 0 {
		t.Errorf("breaker state %v (found %v) after the backlog went out, want 0 (closed)", state, ok)
	}
	// The failures that open the breaker, as many as were in flight then,
	// and one probe per cooldown (a probe's own time only lengthens it).
	bound := failures + workers + int(down/cooldown) + 1
	t.Logf("down %s: %d requests refused (bound %d), %d events delivered", down.Round(time.Millisecond), refused, bound, events)
	if refused > bound {
		t.Errorf("the backend saw %d requests while down for %s, want at most %d", refused, down, bound)
	}
	if refused < 3 {
		t.Errorf("the backend saw %d requests while down: no probes", refused)
	}
}

func (b *clockedBackend) allOK(ids []string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		if len(b.ok[id]) == 0 {
			return false
		}
	}
	return true
}
