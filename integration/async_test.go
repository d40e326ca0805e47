package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// asyncSite routes payment webhooks through async delivery to backend with
// fast retries, so failure paths play out in seconds.
func asyncSite(backend, retry string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + backend + `
			workers 8
			timeout 5s
			retry {
				` + retry + `
			}
		}
	}
}
`
}

const fastRetry = "attempts 1000\n\t\t\t\tinitial_delay 50ms\n\t\t\t\tmax_delay 300ms"

// paymentEvent is a payment gateway webhook with a fresh event id.
func paymentEvent(t *testing.T) (id string, body []byte) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id = hex.EncodeToString(raw)
	body = fmt.Appendf(nil, `{"type":"event","event_triggered":"2021-04-07 15:14:26","event_type":"transaction.sale.success","event_body":{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":"k%s","amount_detail":{"amount":"5.00"}}},"event_id":"%s"}`, id[:10], id)
	return id, body
}

func signedHeader(body []byte) http.Header {
	return http.Header{"X-Signature": {sign(sigKey, body)}}
}

// storedRecord reads one event from the gateway's store after the gateway
// has stopped (Badger allows one process per directory).
func storedRecord(t *testing.T, gw *testcaddy.Instance, id string) *store.Record {
	t.Helper()
	db, err := badger.Open(filepath.Join(gw.Dir, "store"), badger.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec, err := db.Get(context.Background(), "/usaepay", id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestAsyncAcknowledgesThenDelivers(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(asyncSite(be.URL, fastRetry))

	id, body := paymentEvent(t)
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
	if code != http.StatusAccepted || answer["status"] != "accepted" || answer["id"] != id {
		t.Fatalf("got %d %v, want 202 accepted", code, answer)
	}
	testwait.For(t, "delivery", func() bool { return be.count(id) == 1 })
	got := be.received()[0]
	checkCloudEvent(t, got)
	if got.Header.Get("Webhook-Attempt") != "1" {
		t.Errorf("Webhook-Attempt = %q", got.Header.Get("Webhook-Attempt"))
	}

	code, answer = post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
	if code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("duplicate: %d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", id, "delivered")
	if n := be.count(id); n != 1 {
		t.Fatalf("backend received the event %d times", n)
	}

	gw.Stop()
	rec := storedRecord(t, gw, id)
	if rec.Status != store.StatusDelivered || len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != http.StatusOK {
		t.Fatalf("stored record: status %s, attempts %+v", rec.Status, rec.Deliveries[0].Attempts)
	}
}

func TestAsyncBackendDownThenUpLosesNothing(t *testing.T) {
	cases := []struct {
		name string
		// down starts a backend that is down, returning its URL and what
		// brings it up.
		down func(t *testing.T) (be *backend, url string, up func())
	}{
		{"answering 503", func(t *testing.T) (*backend, string, func()) {
			be := newBackend(t)
			be.setStatus(http.StatusServiceUnavailable)
			return be, be.URL, func() { be.setStatus(http.StatusOK) }
		}},
		{"refusing connections", func(t *testing.T) (*backend, string, func()) {
			be := newUnstartedBackend(t)
			addr := be.Listener.Addr().String()
			// Until up, nothing listens on addr: every connection is refused.
			be.Listener.Close()
			return be, "http://" + addr, func() {
				var l net.Listener
				testwait.For(t, "the backend's port to be free again", func() bool {
					var err error
					l, err = net.Listen("tcp", addr)
					return err == nil
				})
				be.Listener = l
				be.Start()
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, url, up := tc.down(t)
			gw := testcaddy.New(t, gatewayEnv...)
			gw.Start(asyncSite(url, fastRetry))

			const n = 40
			ids := make([]string, n)
			for i := range ids {
				id, body := paymentEvent(t)
				ids[i] = id
				if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
					t.Fatalf("event %d: %d %v", i, code, answer)
				}
			}
			// A refused connection never reaches the backend, so ask the
			// store and the metrics: events have failed attempts and the
			// destination is paused (its breaker stops the rest from
			// spending theirs; docs/destinations.md).
			testwait.For(t, "failed attempts and the destination paused", func() bool {
				var all listed
				adminGet(t, gw, "/webhooks/events?limit=1000", &all)
				if len(all.Events) != n {
					return false
				}
				failed := 0
				for _, e := range all.Events {
					if e.Attempts > 0 {
						failed++
					}
				}
				state, ok := scrape(t, gw, "webhook_gateway_destination_breaker_state", `destination="/usaepay"`)
				return failed > 0 && ok && state > 0
			})
			up()

			testwait.For(t, "every event delivered", func() bool { return be.allDeliveredOK(ids) })
		})
	}
}

// TestAsyncSlowBackendTimesOutAndIsRetried holds the first attempt far
// longer than the route's timeout: the gateway gives up on it and delivers
// on a retry.
func TestAsyncSlowBackendTimesOutAndIsRetried(t *testing.T) {
	const timeout = 500 * time.Millisecond
	var calls atomic.Int32
	be := newUnstartedBackend(t)
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// The server notices the gateway hanging up only once the body
			// is read; it answers only if the gateway never does.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(20 * timeout):
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	be.Start()
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(strings.Replace(asyncSite(be.URL, fastRetry), "timeout 5s", "timeout "+timeout.String(), 1))

	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, answer)
	}
	testwait.For(t, "delivery on a retry", func() bool {
		var shown struct {
			Status string `json:"status"`
		}
		adminGet(t, gw, "/webhooks/event?source=/usaepay&id="+id, &shown)
		return shown.Status == string(store.StatusDelivered)
	})

	gw.Stop()
	rec := storedRecord(t, gw, id)
	if len(rec.Deliveries[0].Attempts) < 2 {
		t.Fatalf("delivered in %d attempt(s), want the timed-out one and a retry: %+v", len(rec.Deliveries[0].Attempts), rec.Deliveries[0].Attempts)
	}
	first, last := rec.Deliveries[0].Attempts[0], rec.Deliveries[0].Attempts[len(rec.Deliveries[0].Attempts)-1]
	if first.Status != 0 || !strings.Contains(strings.ToLower(first.Error), "timeout") || first.Latency < timeout*4/5 || first.Latency >= 10*timeout {
		t.Errorf("first attempt %+v, want a timeout after about %v", first, timeout)
	}
	if last.Status != http.StatusOK {
		t.Errorf("last attempt %+v, want 200", last)
	}
}

func TestAsyncRetryAfterAndGone(t *testing.T) {
	var (
		mu    sync.Mutex
		times = map[string][]time.Time{}
	)
	be := newBackend(t)
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Idempotency-Key")
		mu.Lock()
		times[id] = append(times[id], time.Now())
		n := len(times[id])
		mu.Unlock()
		if id == goneID.Load() {
			w.WriteHeader(http.StatusGone)
			return
		}
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(asyncSite(be.URL, fastRetry))

	retryID, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, answer)
	}
	gone, goneBody := paymentEvent(t)
	goneID.Store(gone)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", goneBody, signedHeader(goneBody)); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, answer)
	}

	attempts := func(id string) []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times[id]...)
	}
	testwait.For(t, "second attempt", func() bool { return len(attempts(retryID)) >= 2 })
	at := attempts(retryID)
	// Without Retry-After the fast backoff would retry within 300ms.
	if gap := at[1].Sub(at[0]); gap < 1900*time.Millisecond {
		t.Fatalf("retried after %v despite Retry-After: 2", gap)
	}

	// 410 stops delivery: once the event is dead nothing sends it again.
	waitStatus(t, gw, "/usaepay", gone, "dead")
	if n := len(attempts(gone)); n != 1 {
		t.Fatalf("410 Gone event attempted %d times, want 1", n)
	}

	gw.Stop()
	if rec := storedRecord(t, gw, gone); rec.Status != store.StatusDead {
		t.Fatalf("410 event status %s, want dead", rec.Status)
	}
	rec := storedRecord(t, gw, retryID)
	if rec.Status != store.StatusDelivered || len(rec.Deliveries[0].Attempts) != 2 || rec.Deliveries[0].Attempts[0].Status != http.StatusTooManyRequests {
		t.Fatalf("retried event: status %s attempts %+v", rec.Status, rec.Deliveries[0].Attempts)
	}
}

var goneID atomic.Value

func init() { goneID.Store("") }

func TestAsyncDeadAfterLastAttempt(t *testing.T) {
	be := newBackend(t)
	be.setStatus(http.StatusInternalServerError)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(asyncSite(be.URL, "attempts 3\n\t\t\t\tinitial_delay 50ms\n\t\t\t\tmax_delay 100ms"))

	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("%d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", id, "dead")
	if n := be.count(id); n != 3 {
		t.Fatalf("attempted %d times, want 3", n)
	}
	gw.Stop()
	rec := storedRecord(t, gw, id)
	if rec.Status != store.StatusDead || len(rec.Deliveries[0].Attempts) != 3 {
		t.Fatalf("status %s with %d attempts, want dead after 3", rec.Status, len(rec.Deliveries[0].Attempts))
	}
	for i, a := range rec.Deliveries[0].Attempts {
		if a.Number != i+1 || a.Status != http.StatusInternalServerError {
			t.Errorf("attempt %d recorded as %+v", i+1, a)
		}
	}
}

// TestAsyncKill9LosesNothing kills the gateway mid-burst, while deliveries
// are in flight, and checks that every acknowledged event reaches the
// backend after a restart.
func TestAsyncKill9LosesNothing(t *testing.T) {
	be := newBackend(t)
	be.delay = 20 * time.Millisecond
	gw := testcaddy.New(t, gatewayEnv...)
	site := asyncSite(be.URL, fastRetry)
	gw.Start(site)

	const total = 300
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				id, body := paymentEvent(t)
				req, _ := http.NewRequest(http.MethodPost, gw.BaseURL()+"/hooks/usaepay", bytesReader(body))
				req.Header = signedHeader(body)
				resp, err := client.Do(req)
				if err != nil {
					continue // killed mid-request: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	testwait.For(t, "a third of the burst acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= total/3
	})
	gw.Kill()
	wg.Wait()

	mu.Lock()
	ackedIDs := append([]string(nil), acked...)
	mu.Unlock()
	deliveredBefore := len(be.received())
	t.Logf("acknowledged %d of %d before kill -9; backend had %d deliveries", len(ackedIDs), total, deliveredBefore)
	if len(ackedIDs) == 0 {
		t.Fatal("nothing acknowledged")
	}

	gw.Start(site)
	testwait.For(t, "every acknowledged event delivered after restart", func() bool { return be.allDeliveredOK(ackedIDs) })
}

// TestAsyncReloadDeliversEachEventOnce reloads the config repeatedly while a
// burst is being delivered: the old and the new config's workers run side by
// side on one store, and no event may reach the backend twice.
func TestAsyncReloadDeliversEachEventOnce(t *testing.T) {
	be := newBackend(t)
	be.delay = 5 * time.Millisecond
	gw := testcaddy.New(t, gatewayEnv...)
	site := asyncSite(be.URL, fastRetry)
	gw.Start(site)

	const total = 200
	ids := make([]string, 0, total)
	var wg sync.WaitGroup
	reloads := make(chan error, 1)
	wg.Add(1)
	// A failed test must not leave the goroutine reloading a removed dir.
	defer wg.Wait()
	go func() {
		defer wg.Done()
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			time.Sleep(150 * time.Millisecond)
			// Alternate a harmless setting so each reload builds a new config.
			err = gw.Reload(strings.Replace(site, "workers 8", fmt.Sprintf("workers %d", 4+i), 1))
		}
		reloads <- err
	}()
	for i := 0; i < total; i++ {
		id, body := paymentEvent(t)
		code, answer, err := postRetrying(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		// 200 duplicate: a resend whose first attempt was stored after all.
		if code != http.StatusAccepted && !(code == http.StatusOK && answer["status"] == "duplicate") {
			t.Fatalf("event %d: %d %v", i, code, answer)
		}
		ids = append(ids, id)
	}
	wg.Wait()
	if err := <-reloads; err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "every event delivered", func() bool { return be.allDeliveredOK(ids) })
	for _, id := range ids {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}
	for _, id := range ids {
		if n := be.count(id); n != 1 {
			t.Fatalf("event %s delivered %d times across reloads", id, n)
		}
	}
}
