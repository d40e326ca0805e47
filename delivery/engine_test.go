package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

const testSource = "/usaepay"

// hit is one request as the backend saw it.
type hit struct {
	at     time.Time
	id     string
	number int
	replay bool
	header http.Header
	body   []byte
}

// backend is a real loopback HTTP server whose answer the test controls.
type backend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	answer func(h hit, n int) (status int, header map[string]string) // n: 1-based count for this id
}

func newBackend(t *testing.T, answer func(h hit, n int) (int, map[string]string)) *backend {
	t.Helper()
	b := &backend{answer: answer}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	number, _ := strconv.Atoi(r.Header.Get(HeaderAttempt))
	h := hit{at: time.Now(), id: r.Header.Get(HeaderIdempotencyKey), number: number,
		replay: r.Header.Get(HeaderReplay) == "true", header: r.Header.Clone(), body: body}
	b.mu.Lock()
	b.hits = append(b.hits, h)
	n := 0
	for _, x := range b.hits {
		if x.id == h.id {
			n++
		}
	}
	answer := b.answer
	b.mu.Unlock()
	status, hdr := http.StatusOK, map[string]string(nil)
	if answer != nil {
		status, hdr = answer(h, n)
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
}

func (b *backend) hitsFor(id string) []hit {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []hit
	for _, h := range b.hits {
		if h.id == id {
			out = append(out, h)
		}
	}
	return out
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.hits)
}

func openStore(t *testing.T) *badger.Store {
	t.Helper()
	return openStoreAt(t, t.TempDir())
}

func openStoreAt(t *testing.T, dir string) *badger.Store {
	t.Helper()
	st, err := badger.Open(dir, badger.Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// insert stores pending events the way the async handler does.
func insert(t *testing.T, st store.Store, ids ...string) {
	t.Helper()
	insertFor(t, st, "", ids...)
}

// insertFor stores pending events bound to destination (empty: the
// source).
func insertFor(t *testing.T, st store.Store, destination string, ids ...string) {
	t.Helper()
	now := time.Now()
	for _, id := range ids {
		ev, _ := json.Marshal(map[string]any{
			"specversion": "1.0", "id": id, "source": testSource, "type": "transaction.sale.success",
			"time": now.UTC(), "datacontenttype": "application/json", "data": map[string]string{"key": id},
			"provider": "usaepay", "receivedat": now.UTC(),
		})
		if destination == "" {
			destination = testSource
		}
		rec := &store.Record{Source: testSource, ID: id, Provider: "usaepay", Type: "transaction.sale.success",
			ReceivedAt: now, Event: ev, BatchSize: 1, Retention: time.Hour,
			Deliveries: []store.Delivery{{Destination: destination}}}
		res, err := st.Insert(context.Background(), &store.Ingest{RawBody: ev, Records: []*store.Record{rec}}, true)
		if err != nil || !res[0].Inserted {
			t.Fatalf("inserting %s: %v %+v", id, err, res)
		}
	}
}

// claimWatch is the store of engines under test with their claim passes
// counted, so that a test proves nothing more happened by waiting for
// passes that found nothing, instead of sleeping.
type claimWatch struct {
	store.Store
	workers int // the engines' Workers

	mu      sync.Mutex
	idle    map[string]int // per owner: passes with every worker free that claimed nothing
	claimed map[string]int // per event id: how often a pass returned it
	took    map[string]int // per owner: events its passes returned
	calls   int
}

func watchClaims(st store.Store, workers int) *claimWatch {
	return &claimWatch{Store: st, workers: workers, idle: map[string]int{}, claimed: map[string]int{}, took: map[string]int{}}
}

func (w *claimWatch) Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]store.Claimed, error) {
	recs, err := w.Store.Claim(ctx, owner, destinations, now, lease, limit)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	// The engine claims for every free worker, so a pass for all of them
	// means none was delivering; finding nothing, the engine had nothing to do.
	if err == nil && len(recs) == 0 && limit == w.workers {
		w.idle[owner]++
	}
	for _, r := range recs {
		w.claimed[r.Record.ID]++
	}
	w.took[owner] += len(recs)
	return recs, err
}

// tookSome says whether each owner has claimed at least one event.
func (w *claimWatch) tookSome(owners ...string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range owners {
		if w.took[o] == 0 {
			return false
		}
	}
	return true
}

// claims is how often a pass returned the event id.
func (w *claimWatch) claims(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.claimed[id]
}

// passes is how many times Claim was called.
func (w *claimWatch) passes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// waitIdle waits until each owner has made two more idle passes: the second
// began after the call, with every worker free, and found nothing due, so
// whatever was going to be claimed or sent by then has been.
func (w *claimWatch) waitIdle(t *testing.T, owners ...string) {
	t.Helper()
	w.waitIdlePasses(t, 2, owners...)
}

// waitIdlePasses waits until each owner has made n more idle passes.
func (w *claimWatch) waitIdlePasses(t *testing.T, n int, owners ...string) {
	t.Helper()
	w.mu.Lock()
	from := map[string]int{}
	for _, o := range owners {
		from[o] = w.idle[o]
	}
	w.mu.Unlock()
	testwait.For(t, fmt.Sprintf("%d idle claim passes of %v", n, owners), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, o := range owners {
			if w.idle[o] < from[o]+n {
				return false
			}
		}
		return true
	})
}

// fast is an engine config with ms-scale delays.
func fast(t *testing.T, st store.Store, upstreams ...string) Config {
	return Config{
		Store:        st,
		Destination:  testSource,
		Upstreams:    upstreams,
		Workers:      4,
		Timeout:      2 * time.Second,
		Lease:        5 * time.Second,
		PollInterval: 50 * time.Millisecond,
		StopTimeout:  3 * time.Second,
		Backoff:      Backoff{InitialDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond, MaxRetryAfter: 5 * time.Second, MaxAttempts: 5},
		// Out of the way of the retry tests; breaker_test.go tests it.
		Breaker: throttle.BreakerConfig{Failures: 1 << 30},
		Logger:  zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	}
}

func start(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

// waitStatus polls the store until the event reaches want, or fails after
// testwait's bound.
func waitStatus(t *testing.T, st store.Store, id string, want store.Status) *store.Record {
	t.Helper()
	var rec *store.Record
	testwait.For(t, "event "+id+" "+string(want), func() bool {
		var err error
		if rec, err = st.Get(context.Background(), testSource, id); err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return rec.Status == want
	})
	return rec
}

// observer counts outcomes and keeps the last dead reason.
type observer struct {
	delivered, failed, dead atomic.Int64
	deadReason              atomic.Value // store.DeadReason
}

func (o *observer) Delivered(string, string, int, time.Duration) { o.delivered.Add(1) }
func (o *observer) Failed(string, string, int, time.Duration)    { o.failed.Add(1) }
func (o *observer) Dead(_, _ string, reason store.DeadReason) {
	o.deadReason.Store(reason)
	o.dead.Add(1)
}

func TestHappyPath(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, nil)
	signer, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fast(t, st, be.srv.URL+"/events")
	cfg.PollInterval = time.Hour // only Notify can wake it
	cfg.Headers = NewHeaderBuilder(signer)
	obs := &observer{}
	cfg.Observer = obs
	e := start(t, cfg)

	insert(t, st, "evt-1")
	e.Notify()
	rec := waitStatus(t, st, "evt-1", store.StatusDelivered)

	if len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != 200 || rec.Deliveries[0].Attempts[0].Number != 1 || rec.Deliveries[0].Attempts[0].Error != "" {
		t.Fatalf("attempts = %+v", rec.Deliveries[0].Attempts)
	}
	// The Badger engine shows the delivered record before it drops the
	// lease from memory: look once the worker is done.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if rec, _ := st.Get(context.Background(), testSource, "evt-1"); rec.Deliveries[0].LeaseOwner != "" || !rec.Deliveries[0].NextAttemptAt.IsZero() {
		t.Errorf("lease or schedule left behind: %q %s", rec.Deliveries[0].LeaseOwner, rec.Deliveries[0].NextAttemptAt)
	}
	hits := be.hitsFor("evt-1")
	if len(hits) != 1 {
		t.Fatalf("backend saw %d requests, want 1", len(hits))
	}
	h := hits[0]
	if string(h.body) != string(rec.Event) {
		t.Errorf("body = %s, want the stored event %s", h.body, rec.Event)
	}
	if h.header.Get("Content-Type") != "application/cloudevents+json" || h.number != 1 || h.replay {
		t.Errorf("headers = %v", h.header)
	}
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Errorf("signature does not verify with the standard-webhooks library: %v", err)
	}
	if obs.delivered.Load() != 1 || obs.failed.Load() != 0 {
		t.Errorf("observer delivered=%d failed=%d", obs.delivered.Load(), obs.failed.Load())
	}
}

func TestBackendDownThenUp(t *testing.T) {
	st := openStore(t)
	var up atomic.Bool
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		if up.Load() {
			return http.StatusNoContent, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	cfg := fast(t, st, be.srv.URL)
	cfg.Backoff.MaxAttempts = 1000
	e := start(t, cfg)

	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("evt-%02d", i))
	}
	insert(t, st, ids...)
	e.Notify()
	testwait.For(t, "every event to fail at least twice", func() bool {
		for _, id := range ids {
			if len(be.hitsFor(id)) < 2 {
				return false
			}
		}
		return true
	})
	up.Store(true)
	for _, id := range ids {
		rec := waitStatus(t, st, id, store.StatusDelivered)
		last := rec.Deliveries[0].Attempts[len(rec.Deliveries[0].Attempts)-1]
		if last.Status != http.StatusNoContent {
			t.Errorf("%s: last attempt %+v", id, last)
		}
		// Every request is recorded, and nothing was sent after the 2xx.
		if got := len(be.hitsFor(id)); got != len(rec.Deliveries[0].Attempts) {
			t.Errorf("%s: backend saw %d requests, store recorded %d attempts", id, got, len(rec.Deliveries[0].Attempts))
		}
		for i, a := range rec.Deliveries[0].Attempts {
			if a.Number != i+1 {
				t.Errorf("%s: attempt %d numbered %d", id, i+1, a.Number)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(_ hit, n int) (int, map[string]string) {
		if n == 1 {
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}
		}
		return http.StatusOK, nil
	})
	e := start(t, fast(t, st, be.srv.URL))
	insert(t, st, "evt-ra")
	e.Notify()
	rec := waitStatus(t, st, "evt-ra", store.StatusDelivered)
	hits := be.hitsFor("evt-ra")
	if len(hits) != 2 || len(rec.Deliveries[0].Attempts) != 2 {
		t.Fatalf("backend saw %d requests, store has %d attempts, want 2", len(hits), len(rec.Deliveries[0].Attempts))
	}
	if gap := hits[1].at.Sub(hits[0].at); gap < time.Second {
		t.Errorf("second attempt %s after the first, before the 1s Retry-After", gap)
	}
	if rec.Deliveries[0].Attempts[0].Status != http.StatusTooManyRequests {
		t.Errorf("first attempt %+v", rec.Deliveries[0].Attempts[0])
	}
}

func TestGoneIsDead(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(hit, int) (int, map[string]string) { return http.StatusGone, nil })
	cfg := fast(t, st, be.srv.URL)
	w := watchClaims(st, cfg.Workers)
	cfg.Store, cfg.Owner = w, "engine"
	obs := &observer{}
	cfg.Observer = obs
	e := start(t, cfg)
	insert(t, st, "evt-gone")
	e.Notify()
	rec := waitStatus(t, st, "evt-gone", store.StatusDead)
	if len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != http.StatusGone {
		t.Fatalf("attempts = %+v, want one 410", rec.Deliveries[0].Attempts)
	}
	w.waitIdle(t, "engine") // a dead event stays put
	if n := w.claims("evt-gone"); n != 1 {
		t.Errorf("the event was claimed %d times, want 1", n)
	}
	if n := len(be.hitsFor("evt-gone")); n != 1 {
		t.Errorf("backend saw %d requests, want 1", n)
	}
	if obs.dead.Load() != 1 {
		t.Errorf("observer saw %d dead events", obs.dead.Load())
	}
	if r := obs.deadReason.Load(); r != store.DeadGone {
		t.Errorf("observer saw dead reason %v, want %q", r, store.DeadGone)
	}
}

func TestMaxAttemptsDead(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(hit, int) (int, map[string]string) { return http.StatusInternalServerError, nil })
	cfg := fast(t, st, be.srv.URL)
	cfg.Backoff.MaxAttempts = 3
	w := watchClaims(st, cfg.Workers)
	cfg.Store, cfg.Owner = w, "engine"
	e := start(t, cfg)
	insert(t, st, "evt-500")
	e.Notify()
	rec := waitStatus(t, st, "evt-500", store.StatusDead)
	w.waitIdle(t, "engine") // no fourth attempt
	if n := w.claims("evt-500"); n != 3 {
		t.Errorf("the event was claimed %d times, want 3", n)
	}
	hits := be.hitsFor("evt-500")
	if len(rec.Deliveries[0].Attempts) != 3 || len(hits) != 3 {
		t.Fatalf("%d attempts, %d requests; want 3 and 3", len(rec.Deliveries[0].Attempts), len(hits))
	}
	for i, h := range hits {
		if h.number != i+1 {
			t.Errorf("request %d carried Webhook-Attempt %d", i+1, h.number)
		}
	}
	if rec.Deliveries[0].Attempts[2].Error == "" {
		t.Error("failed attempt has no error text")
	}
}

func TestNetworkErrorRetry(t *testing.T) {
	st := openStore(t)
	// Take a free port and close it: connections are refused until the
	// backend listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := fast(t, st, "http://"+addr+"/hook")
	cfg.Backoff.MaxAttempts = 1000
	e := start(t, cfg)
	insert(t, st, "evt-net")
	e.Notify()
	testwait.For(t, "two refused attempts", func() bool {
		rec, err := st.Get(context.Background(), testSource, "evt-net")
		return err == nil && len(rec.Deliveries[0].Attempts) >= 2
	})
	rec, _ := st.Get(context.Background(), testSource, "evt-net")
	if a := rec.Deliveries[0].Attempts[0]; a.Status != 0 || a.Error == "" {
		t.Fatalf("refused attempt recorded as %+v", a)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	be := &backend{}
	srv := &http.Server{Handler: http.HandlerFunc(be.serve), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	rec = waitStatus(t, st, "evt-net", store.StatusDelivered)
	if n := len(be.hitsFor("evt-net")); n != 1 {
		t.Errorf("backend saw %d requests, want 1", n)
	}
	if rec.Deliveries[0].Attempts[len(rec.Deliveries[0].Attempts)-1].Status != 200 {
		t.Errorf("last attempt %+v", rec.Deliveries[0].Attempts[len(rec.Deliveries[0].Attempts)-1])
	}
}

func TestFailoverOnRefusedConnection(t *testing.T) {
	st := openStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	be := newBackend(t, nil)

	e := start(t, fast(t, st, down, be.srv.URL))
	ids := []string{"evt-a", "evt-b", "evt-c", "evt-d"}
	insert(t, st, ids...)
	e.Notify()
	for _, id := range ids {
		rec := waitStatus(t, st, id, store.StatusDelivered)
		// Round-robin starts half the attempts at the dead upstream; each
		// must still succeed in one attempt.
		if len(rec.Deliveries[0].Attempts) != 1 {
			t.Errorf("%s: %d attempts, want 1 (failover within the attempt)", id, len(rec.Deliveries[0].Attempts))
		}
	}
}

func TestTwoEnginesNeverSendTheSameAttemptTwice(t *testing.T) {
	st := openStore(t)
	// The backend holds every request until both engines hold claims, so
	// their leases certainly overlap (one engine's workers are busy at the
	// backend while the other claims), whatever the machine's speed.
	overlap := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(overlap) }) }
	be := newBackend(t, func(h hit, _ int) (int, map[string]string) {
		<-overlap
		if h.number == 1 && h.id[len(h.id)-1]%3 == 0 {
			return http.StatusServiceUnavailable, nil // some events need a retry
		}
		return http.StatusOK, nil
	})
	cfgA, cfgB := fast(t, st, be.srv.URL), fast(t, st, be.srv.URL)
	cfgA.Owner, cfgB.Owner = "engine-a", "engine-b"
	// Held requests must not time out: an attempt given up while the
	// backend still counts it would read as a second send.
	cfgA.Timeout, cfgA.Lease = time.Minute, 2*time.Minute
	cfgB.Timeout, cfgB.Lease = cfgA.Timeout, cfgA.Lease
	w := watchClaims(st, cfgA.Workers)
	cfgA.Store, cfgB.Store = w, w
	obsA, obsB := &observer{}, &observer{}
	cfgA.Observer, cfgB.Observer = obsA, obsB
	a, b := start(t, cfgA), start(t, cfgB)
	t.Cleanup(open) // runs before the engines stop, should the test fail first

	var ids []string
	for i := range 120 {
		ids = append(ids, fmt.Sprintf("evt-%03d", i))
	}
	insert(t, st, ids...)
	a.Notify()
	b.Notify()
	testwait.For(t, "both engines holding claims", func() bool { return w.tookSome("engine-a", "engine-b") })
	open()
	for _, id := range ids {
		waitStatus(t, st, id, store.StatusDelivered)
	}
	w.waitIdle(t, "engine-a", "engine-b") // no late or second send in flight

	seen := map[string]int{}
	be.mu.Lock()
	for _, h := range be.hits {
		seen[h.id+"#"+strconv.Itoa(h.number)]++
	}
	total := len(be.hits)
	be.mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("attempt %s sent %d times", k, n)
		}
	}
	for _, id := range ids {
		rec, _ := st.Get(context.Background(), testSource, id)
		if got := len(be.hitsFor(id)); got != len(rec.Deliveries[0].Attempts) {
			t.Errorf("%s: backend saw %d requests, store recorded %d attempts", id, got, len(rec.Deliveries[0].Attempts))
		}
	}
	// Each engine claims at most Workers (4) events at a time, so both
	// take part; otherwise the test would prove nothing.
	a1, b1 := obsA.delivered.Load()+obsA.failed.Load(), obsB.delivered.Load()+obsB.failed.Load()
	if a1 == 0 || b1 == 0 || int(a1+b1) != total {
		t.Errorf("engine a sent %d, engine b %d, backend saw %d", a1, b1, total)
	}
	t.Logf("%d requests for %d events (engine a %d, engine b %d)", total, len(ids), a1, b1)
}

func TestRestartResumesPending(t *testing.T) {
	dir := t.TempDir()
	st := openStoreAt(t, dir)
	var up atomic.Bool
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusBadGateway, nil
	})
	cfg := fast(t, st, be.srv.URL)
	cfg.Backoff.MaxAttempts = 1000
	w := watchClaims(st, cfg.Workers)
	cfg.Store = w
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := []string{"evt-r1", "evt-r2", "evt-r3"}
	insert(t, st, ids...)
	first.Notify()
	testwait.For(t, "failed attempts before the restart", func() bool { return be.count() >= 6 })
	if err := first.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stopped: nothing leased, nothing sent any more.
	for _, id := range ids {
		rec, _ := st.Get(context.Background(), testSource, id)
		if (rec.Status != store.StatusRetrying && rec.Status != store.StatusPending) || rec.Deliveries[0].LeaseOwner != "" {
			t.Fatalf("%s after Stop: status %s lease %q", id, rec.Status, rec.Deliveries[0].LeaseOwner)
		}
	}
	before, passes := be.count(), w.passes()

	// A process restart: the store is closed and reopened, a new engine
	// (new owner) starts on it.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStoreAt(t, dir)
	up.Store(true)
	cfg.Store = st
	cfg.Owner = ""
	start(t, cfg) // no Notify: Start looks for pending work itself
	for _, id := range ids {
		waitStatus(t, st, id, store.StatusDelivered)
	}
	// The new engine's deliveries took several of the stopped one's poll
	// intervals; it claimed nothing in them and sent nothing.
	if n := w.passes(); n != passes {
		t.Errorf("the stopped engine claimed %d more times", n-passes)
	}
	if n := be.count() - before; n != len(ids) {
		t.Errorf("backend saw %d requests after the stop, want the new engine's %d", n, len(ids))
	}
}

func TestExpiredLeaseOfDeadEngineResumes(t *testing.T) {
	st := openStore(t)
	insert(t, st, "evt-crash")
	// An engine claims the event and dies without a word. The surviving
	// engine's clock, not the machine's, decides when that lease is over.
	clock := storetest.NewClock()
	claimed, err := st.Claim(context.Background(), "crashed-engine", []string{testSource}, clock.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d records", err, len(claimed))
	}
	be := newBackend(t, nil)
	cfg := fast(t, st, be.srv.URL)
	w := watchClaims(st, cfg.Workers)
	cfg.Store, cfg.Owner, cfg.Now = w, "engine", clock.Now
	e := start(t, cfg)
	e.Notify()
	// One pass with every worker free that found nothing: the event was
	// leased then.
	w.waitIdlePasses(t, 1, "engine")
	if be.count() != 0 || w.claims("evt-crash") != 0 {
		t.Fatal("event sent while another engine's lease was valid")
	}
	clock.Advance(time.Minute + time.Second)
	e.Notify()
	rec := waitStatus(t, st, "evt-crash", store.StatusDelivered)
	if len(rec.Deliveries[0].Attempts) != 1 {
		t.Errorf("attempts = %+v", rec.Deliveries[0].Attempts)
	}
}

func TestStopWaitsForInFlight(t *testing.T) {
	st := openStore(t)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		<-release
		return http.StatusOK, nil
	})
	t.Cleanup(free) // runs before the server's Close, which waits for handlers
	cfg := fast(t, st, be.srv.URL)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	insert(t, st, "evt-slow")
	e.Notify()
	testwait.For(t, "the request to reach the backend", func() bool { return be.count() == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while an attempt was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	free()
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-slow")
	if rec.Status != store.StatusDelivered || len(rec.Deliveries[0].Attempts) != 1 {
		t.Fatalf("after Stop: %s with %d attempts", rec.Status, len(rec.Deliveries[0].Attempts))
	}
}

func TestStopCancelsAfterTimeout(t *testing.T) {
	st := openStore(t)
	block := make(chan struct{})
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		<-block
		return http.StatusOK, nil
	})
	t.Cleanup(func() { close(block) }) // before the server's Close, which waits for handlers
	cfg := fast(t, st, be.srv.URL)
	cfg.StopTimeout = 100 * time.Millisecond
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	insert(t, st, "evt-stuck")
	e.Notify()
	testwait.For(t, "the request to reach the backend", func() bool { return be.count() == 1 })
	if err := e.Stop(); err == nil {
		t.Fatal("Stop reported no cancellation")
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-stuck")
	if rec.Status != store.StatusRetrying || len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != 0 {
		t.Fatalf("cancelled attempt left %s with %+v", rec.Status, rec.Deliveries[0].Attempts)
	}
}

func TestReplay(t *testing.T) {
	st := openStore(t)
	var gone atomic.Bool
	gone.Store(true)
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		if gone.Load() {
			return http.StatusGone, nil
		}
		return http.StatusAccepted, nil
	})
	signer, _ := NewSigner(testSecret)
	cfg := fast(t, st, be.srv.URL)
	cfg.Headers = NewHeaderBuilder(signer)
	obs := &observer{}
	cfg.Observer = obs
	e := start(t, cfg)
	insert(t, st, "evt-x")
	e.Notify()
	waitStatus(t, st, "evt-x", store.StatusDead)
	gone.Store(false)

	dry, err := e.Replay(context.Background(), testSource, "evt-x", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Attempt != nil || dry.Header.Get(HeaderReplay) != "true" ||
		dry.Header.Get(HeaderAttempt) != "2" || dry.URL != be.srv.URL || len(dry.Body) == 0 {
		t.Fatalf("dry run result %+v", dry)
	}
	if n := len(be.hitsFor("evt-x")); n != 1 {
		t.Fatalf("dry run sent a request (%d seen)", n)
	}

	res, err := e.Replay(context.Background(), testSource, "evt-x", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempt == nil || res.Attempt.Status != http.StatusAccepted || !res.Attempt.Replay || res.Status != store.StatusDelivered {
		t.Fatalf("replay result %+v", res)
	}
	hits := be.hitsFor("evt-x")
	if len(hits) != 2 || !hits[1].replay || hits[1].number != 2 || hits[1].header.Get(HeaderIdempotencyKey) != "evt-x" {
		t.Fatalf("backend saw %+v", hits)
	}
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	if err := wh.Verify(hits[1].body, hits[1].header); err != nil {
		t.Errorf("replay signature: %v", err)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-x")
	if rec.Status != store.StatusDelivered || rec.Deliveries[0].Replays != 1 || len(rec.Deliveries[0].Attempts) != 2 || !rec.Deliveries[0].Attempts[1].Replay {
		t.Fatalf("record after replay: %s replays=%d attempts=%+v", rec.Status, rec.Deliveries[0].Replays, rec.Deliveries[0].Attempts)
	}

	// A delivered event can be replayed again: dedup does not apply.
	if _, err := e.Replay(context.Background(), testSource, "evt-x", "", false); err != nil {
		t.Fatal(err)
	}
	if n := len(be.hitsFor("evt-x")); n != 3 {
		t.Errorf("second replay: backend saw %d requests, want 3", n)
	}

	if _, err := e.Replay(context.Background(), testSource, "nope", "", false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaying a missing event: %v", err)
	}
	if res.Destination != testSource || res.Redirected {
		t.Errorf("replay to the event's own destination: destination %q, redirected %v", res.Destination, res.Redirected)
	}
}

// TestEnginesShareASourceNotADestination: two engines on one store deliver
// events of one source (two accounts of one provider), each bound to its
// own destination; each backend gets its own events only, exactly once.
func TestEnginesShareASourceNotADestination(t *testing.T) {
	st := openStore(t)
	ok := func(hit, int) (int, map[string]string) { return http.StatusOK, nil }
	beA, beB := newBackend(t, ok), newBackend(t, ok)
	cfgA, cfgB := fast(t, st, beA.srv.URL), fast(t, st, beB.srv.URL)
	cfgA.Destination, cfgB.Destination = "a", "b"
	start(t, cfgA)
	start(t, cfgB)
	var idsA, idsB []string
	for i := range 20 {
		idsA = append(idsA, fmt.Sprint("a-", i))
		idsB = append(idsB, fmt.Sprint("b-", i))
	}
	insertFor(t, st, "a", idsA...)
	insertFor(t, st, "b", idsB...)
	for _, id := range idsA {
		waitStatus(t, st, id, store.StatusDelivered)
	}
	for _, id := range idsB {
		waitStatus(t, st, id, store.StatusDelivered)
	}
	for _, c := range []struct {
		be         *backend
		own, other []string
	}{{beA, idsA, idsB}, {beB, idsB, idsA}} {
		for _, id := range c.own {
			if n := len(c.be.hitsFor(id)); n != 1 {
				t.Errorf("%s reached its destination %d times, want 1", id, n)
			}
		}
		for _, id := range c.other {
			if n := len(c.be.hitsFor(id)); n != 0 {
				t.Errorf("%s reached the other destination's backend %d times", id, n)
			}
		}
	}
}

// TestReplayToAnotherDestination: an operator may send an event bound to
// another destination through this engine; the attempt names where it went
// and the event's status stays its own destination's.
func TestReplayToAnotherDestination(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(hit, int) (int, map[string]string) { return http.StatusOK, nil })
	e, err := New(fast(t, st, be.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Record{Source: testSource, ID: "evt-elsewhere", Provider: "usaepay", Type: "t",
		Deliveries: []store.Delivery{{Destination: "elsewhere"}}, Event: []byte(`{"id":"evt-elsewhere"}`)}
	if _, err := st.Insert(context.Background(), &store.Ingest{RawBody: []byte("{}"), Records: []*store.Record{r}}, true); err != nil {
		t.Fatal(err)
	}
	res, err := e.Replay(context.Background(), testSource, "evt-elsewhere", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Redirected || res.Destination != testSource || res.Attempt == nil || res.Attempt.Status != http.StatusOK ||
		res.Attempt.Destination != testSource || res.Status != store.StatusPending {
		t.Fatalf("replay to another destination: %+v", res)
	}
	if n := len(be.hitsFor("evt-elsewhere")); n != 1 {
		t.Fatalf("backend saw %d requests, want 1", n)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-elsewhere")
	if rec.Status != store.StatusPending || rec.Deliveries[0].Destination != "elsewhere" || len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Destination != testSource {
		t.Fatalf("record after the replay: %s destination %q attempts %+v", rec.Status, rec.Deliveries[0].Destination, rec.Deliveries[0].Attempts)
	}
}

func TestReplayFailureKeepsStatus(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(hit, int) (int, map[string]string) { return http.StatusGone, nil })
	e := start(t, fast(t, st, be.srv.URL))
	insert(t, st, "evt-z")
	e.Notify()
	waitStatus(t, st, "evt-z", store.StatusDead)
	res, err := e.Replay(context.Background(), testSource, "evt-z", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusDead || res.Attempt.Status != http.StatusGone {
		t.Fatalf("failed replay result %+v", res)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-z")
	if rec.Status != store.StatusDead || rec.Deliveries[0].Replays != 1 || len(rec.Deliveries[0].Attempts) != 2 {
		t.Fatalf("record after failed replay: %s replays=%d attempts=%d", rec.Status, rec.Deliveries[0].Replays, len(rec.Deliveries[0].Attempts))
	}
}

func TestNewValidates(t *testing.T) {
	st := openStore(t)
	base := Config{Store: st, Destination: testSource, Upstreams: []string{"http://127.0.0.1:1"}}
	for name, mut := range map[string]func(*Config){
		"no store":       func(c *Config) { c.Store = nil },
		"no destination": func(c *Config) { c.Destination = "" },
		"no upstreams":   func(c *Config) { c.Upstreams = nil },
		"relative URL":   func(c *Config) { c.Upstreams = []string{"/hook"} },
		"ftp URL":        func(c *Config) { c.Upstreams = []string{"ftp://x/y"} },
		"short lease":    func(c *Config) { c.Timeout, c.Lease = 10*time.Second, 5*time.Second },
	} {
		c := base
		mut(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	e, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if e.Owner() == "" {
		t.Error("no default owner")
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestAttemptErrorRedactsUpstreamURL(t *testing.T) {
	st := openStore(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fast(t, st, "http://user:pa55@"+addr+"/hook/s3cr3t-path?token=s3cr3t-query")
	cfg.Backoff.MaxAttempts = 1
	e := start(t, cfg)
	insert(t, st, "evt-redact")
	e.Notify()
	rec := waitStatus(t, st, "evt-redact", store.StatusDead)
	msg := rec.Deliveries[0].Attempts[0].Error
	for _, secret := range []string{"pa55", "s3cr3t"} {
		if strings.Contains(msg, secret) {
			t.Errorf("attempt error %q leaks %q", msg, secret)
		}
	}
	if !strings.Contains(msg, addr) {
		t.Errorf("attempt error %q does not name the upstream host", msg)
	}
}

func TestReplayRefusesReservedEvent(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, nil)
	e, err := New(fast(t, st, be.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := &store.Record{Source: testSource, ID: "evt-sync", Provider: "usaepay", Type: "t",
		ReceivedAt: now, Event: []byte(`{}`), BatchSize: 1, Retention: time.Hour,
		Deliveries: []store.Delivery{{Destination: testSource, Status: store.StatusReserved}}}
	if _, err := st.Insert(context.Background(), &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, false); err != nil {
		t.Fatal(err)
	}
	// The engine is not started: Replay works without the workers.
	if _, err := e.Replay(context.Background(), testSource, "evt-sync", "", false); !errors.Is(err, ErrReserved) {
		t.Fatalf("replaying a reserved event: %v", err)
	}
	if be.count() != 0 {
		t.Fatal("a reserved event was sent")
	}
}

// BenchmarkEngineDeliver measures end-to-end async delivery: claim, POST to
// a loopback backend, durable record. Events are stored before the timer
// starts.
func BenchmarkEngineDeliver(b *testing.B) {
	st, err := badger.Open(b.TempDir(), badger.Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	now := time.Now()
	ev := []byte(`{"specversion":"1.0","data":"` + strings.Repeat("x", 1000) + `"}`)
	for i := 0; i < b.N; i += 200 {
		in := &store.Ingest{RawBody: ev}
		for j := i; j < min(i+200, b.N); j++ {
			// Each event its own receive time, as requests have.
			at := now.Add(time.Duration(j) * time.Microsecond)
			in.Records = append(in.Records, &store.Record{Source: testSource, ID: fmt.Sprintf("bench-%d", j),
				Provider: "usaepay", Type: "t", ReceivedAt: at, Event: ev, BatchSize: 1, Retention: time.Hour,
				Deliveries: []store.Delivery{{Destination: testSource}}})
		}
		if _, err := st.Insert(context.Background(), in, false); err != nil {
			b.Fatal(err)
		}
	}
	obs := &observer{}
	e, err := New(Config{Store: st, Destination: testSource, Upstreams: []string{srv.URL},
		Workers: 16, Observer: obs, PollInterval: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	for obs.delivered.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	_ = e.Stop()
	if f := obs.failed.Load(); f != 0 {
		b.Fatalf("%d failed attempts", f)
	}
}
