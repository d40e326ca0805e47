package handlers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

const (
	tokenHeader = "X-Loyalty-Token"
	token       = "t0ken"
	exampleID   = "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
)

func openStore(t testing.TB) *badger.Store {
	t.Helper()
	db, err := badger.Open(t.TempDir(), badger.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testdata(t *testing.T, provider, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "normalize", "testdata", provider, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// counter records the outcomes the gateway reports.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *counter) Received(provider, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	c.seen[provider+"/"+outcome]++
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func newGateway(t testing.TB, mode Mode, provider string) (*Gateway, *counter) {
	t.Helper()
	hv, err := verify.NewHeader(tokenHeader, token)
	if err != nil {
		t.Fatal(err)
	}
	obs := &counter{}
	var dests []Destination
	if mode == Async {
		// The route-level shorthand's destination, named after the source.
		dests = []Destination{{Name: normalize.DefaultSource(provider)}}
	}
	return &Gateway{
		Destinations:  dests,
		Normalize:     normalize.Options{Provider: provider},
		Verifiers:     []verify.Verifier{hv},
		SecretHeaders: hv.SecretHeaders(),
		MaxBodySize:   64 << 10,
		Mode:          mode,
		Retention:     time.Hour,
		DedupWindow:   30 * time.Second,
		Store:         openStore(t),
		Headers:       delivery.NewHeaderBuilder(nil),
		Observer:      obs,
		Logger:        zap.NewNop(),
	}, obs
}

type result struct {
	code   int
	answer map[string]any
}

func serve(t *testing.T, g *Gateway, method string, body []byte, next Next) result {
	t.Helper()
	req := httptest.NewRequest(method, "/hooks", bytes.NewReader(body))
	req.Header.Set(tokenHeader, token)
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return result{rec.Code, answer}
}

// backend is a Next that records the requests handed to it.
type backend struct {
	mu     sync.Mutex
	bodies [][]byte
	header []http.Header
	status int
	err    error
}

func (b *backend) next(w http.ResponseWriter, r *http.Request) error {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, body)
	b.header = append(b.header, r.Header.Clone())
	status, err := b.status, b.err
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte("backend body the provider must not see"))
	return nil
}

func TestRejectsBeforeParsing(t *testing.T) {
	g, obs := newGateway(t, Sync, normalize.USAePay)
	be := &backend{}
	body := testdata(t, "usaepay", "transaction.sale.success")

	if r := serve(t, g, http.MethodGet, nil, be.next); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", r.code)
	}

	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, be.next); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", rec.Code)
	}

	big := bytes.Repeat([]byte(" "), int(g.MaxBodySize)+1)
	if r := serve(t, g, http.MethodPost, big, be.next); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", r.code)
	}

	r := serve(t, g, http.MethodPost, []byte(`{"type":"event",`), be.next)
	if r.code != http.StatusBadRequest || r.answer["error"] == "" {
		t.Errorf("invalid JSON: %d %v", r.code, r.answer)
	}
	if len(be.bodies) != 0 {
		t.Fatalf("next handler called %d times for rejected requests", len(be.bodies))
	}
	if obs.get("usaepay/unauthorized") != 1 || obs.get("usaepay/too_large") != 1 || obs.get("usaepay/invalid") != 2 {
		t.Errorf("outcomes %v", obs.seen)
	}
}

func TestSyncForwardsCanonicalEventAndCommits(t *testing.T) {
	g, _ := newGateway(t, Sync, normalize.USAePay)
	be := &backend{}
	body := testdata(t, "usaepay", "transaction.sale.success")

	r := serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusOK || r.answer["status"] != "delivered" || r.answer["id"] != exampleID {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	if len(be.bodies) != 1 {
		t.Fatalf("forwarded %d times", len(be.bodies))
	}
	h := be.header[0]
	if h.Get("Content-Type") != "application/cloudevents+json" || h.Get("Idempotency-Key") != exampleID {
		t.Errorf("delivery headers %v", h)
	}
	if h.Get(tokenHeader) != "" {
		t.Error("the provider's secret header was forwarded")
	}

	rec, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.StatusDelivered || len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != http.StatusOK {
		t.Fatalf("stored %s %+v", rec.Status, rec.Deliveries[0].Attempts)
	}
	if !bytes.Equal(rec.Event, be.bodies[0]) {
		t.Error("stored event differs from the delivered one")
	}
	if rec.Headers.Get(tokenHeader) != "" {
		t.Error("the provider's secret header was stored")
	}
	raw, err := g.Store.RawBody(context.Background(), "/usaepay", exampleID)
	if err != nil || !bytes.Equal(raw, body) {
		t.Fatalf("raw body not kept: %v", err)
	}

	r = serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusOK || r.answer["status"] != "duplicate" || len(be.bodies) != 1 {
		t.Fatalf("duplicate: %d %v, forwarded %d", r.code, r.answer, len(be.bodies))
	}
}

func TestSyncFailureReleasesReservation(t *testing.T) {
	for name, be := range map[string]*backend{
		"backend 500":   {status: http.StatusInternalServerError},
		"backend 404":   {status: http.StatusNotFound},
		"handler error": {err: errors.New("dial tcp: connection refused")},
	} {
		t.Run(name, func(t *testing.T) {
			g, _ := newGateway(t, Sync, normalize.USAePay)
			body := testdata(t, "usaepay", "transaction.sale.success")
			r := serve(t, g, http.MethodPost, body, be.next)
			if r.code != http.StatusBadGateway || r.answer["status"] != "failed" {
				t.Fatalf("got %d %v", r.code, r.answer)
			}
			got, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
			if err != nil || got.Status != store.StatusReleased || len(got.Deliveries[0].Attempts) != 1 ||
				got.Deliveries[0].Attempts[0].Status != be.status || (be.err != nil) != (got.Deliveries[0].Attempts[0].Error != "") {
				t.Fatalf("after the failure: %+v %v", got, err)
			}
			ok := &backend{}
			if r := serve(t, g, http.MethodPost, body, ok.next); r.code != http.StatusOK || r.answer["status"] != "delivered" {
				t.Fatalf("retry: %d %v", r.code, r.answer)
			}
			got, err = g.Store.Get(context.Background(), "/usaepay", exampleID)
			if err != nil || got.Status != store.StatusDelivered || len(got.Deliveries[0].Attempts) != 2 ||
				got.Deliveries[0].Attempts[0].Status != be.status || got.Deliveries[0].Attempts[1].Status != http.StatusOK {
				t.Fatalf("after the retry: %+v %v", got, err)
			}
		})
	}
}

func TestSyncInFlightDuplicateIsNotAcknowledged(t *testing.T) {
	g, _ := newGateway(t, Sync, normalize.USAePay)
	body := testdata(t, "usaepay", "transaction.sale.success")

	entered := make(chan struct{})
	release := make(chan struct{})
	slow := func(w http.ResponseWriter, r *http.Request) error {
		close(entered)
		<-release
		w.WriteHeader(http.StatusOK)
		return nil
	}
	done := make(chan result)
	go func() { done <- serve(t, g, http.MethodPost, body, slow) }()
	<-entered

	r := serve(t, g, http.MethodPost, body, (&backend{}).next)
	if r.code != http.StatusConflict || r.answer["status"] != "in_progress" {
		t.Fatalf("concurrent duplicate: %d %v, want 409 in_progress", r.code, r.answer)
	}
	close(release)
	if first := <-done; first.code != http.StatusOK {
		t.Fatalf("first: %d %v", first.code, first.answer)
	}
}

func TestSyncLoyaltyBatchOneRequestPerItem(t *testing.T) {
	g, _ := newGateway(t, Sync, normalize.OpenLoyalty)
	body := testdata(t, "openloyalty", filepath.Join("batch", "account.expiring_points_notification"))

	// The second item fails: it and every later item are released, the
	// first stays delivered.
	var calls int
	failSecond := func(w http.ResponseWriter, r *http.Request) error {
		calls++
		if calls == 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return nil
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	r := serve(t, g, http.MethodPost, body, failSecond)
	events, _ := r.answer["events"].([]any)
	if r.code != http.StatusBadGateway || len(events) < 3 {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	if calls != 2 {
		t.Fatalf("forwarded %d items, want 2 (stop after the failure)", calls)
	}
	statuses := make([]string, len(events))
	for i, e := range events {
		statuses[i] = e.(map[string]any)["status"].(string)
	}
	if statuses[0] != "delivered" || statuses[1] != "failed" || statuses[2] != "failed" {
		t.Fatalf("item statuses %v", statuses)
	}

	// The provider's retry delivers the rest, skipping the first.
	be := &backend{}
	r = serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusOK || len(be.bodies) != len(events)-1 {
		t.Fatalf("retry: %d %v, forwarded %d", r.code, r.answer, len(be.bodies))
	}
}

func TestAsyncStoresDurablyAndNotifies(t *testing.T) {
	g, obs := newGateway(t, Async, normalize.USAePay)
	n := &notifier{}
	g.Waker = n
	body := testdata(t, "usaepay", "transaction.sale.success")
	never := func(http.ResponseWriter, *http.Request) error {
		t.Fatal("async mode called the next handler")
		return nil
	}

	r := serve(t, g, http.MethodPost, body, never)
	if r.code != http.StatusAccepted || r.answer["status"] != "accepted" || r.answer["id"] != exampleID {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	rec, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if err != nil || rec.Status != store.StatusPending {
		t.Fatalf("stored: %v %v", rec, err)
	}
	if n.count() != 1 {
		t.Errorf("workers notified %d times", n.count())
	}

	r = serve(t, g, http.MethodPost, body, never)
	if r.code != http.StatusOK || r.answer["status"] != "duplicate" {
		t.Fatalf("duplicate: %d %v", r.code, r.answer)
	}
	if n.count() != 1 {
		t.Errorf("a duplicate woke the workers")
	}
	if obs.get("usaepay/accepted") != 1 || obs.get("usaepay/duplicate") != 1 {
		t.Errorf("outcomes %v", obs.seen)
	}
}

func TestAutoDetectsProvider(t *testing.T) {
	g, obs := newGateway(t, Async, normalize.Auto)
	body := testdata(t, "sublytics", "order_updated")
	r := serve(t, g, http.MethodPost, body, nil)
	if r.code != http.StatusAccepted {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	if obs.get("sublytics/accepted") != 1 {
		t.Errorf("outcomes %v: want the detected provider", obs.seen)
	}
	// The route's credential vouches for its own source only: the event is
	// stored under the auto route's source, not the detected provider's.
	id := r.answer["id"].(string)
	if _, err := g.Store.Get(context.Background(), "/"+normalize.Sublytics, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("event stored under /sublytics: %v", err)
	}
	rec, err := g.Store.Get(context.Background(), normalize.AutoSource, id)
	if err != nil || rec.Provider != normalize.Sublytics {
		t.Fatalf("event under %s: %+v, %v", normalize.AutoSource, rec, err)
	}
}

// A request id that no signature covers can be rewritten by whoever
// re-sends a captured request: within the dedup window the same content is
// a duplicate whatever its id. One that the signature covers cannot, so the
// same content under another signed id is another event.
func TestRequestIDDedupDependsOnItsSignature(t *testing.T) {
	const idHeader = "X-Webhook-Request-Id"
	body := []byte(`{"type":"customer.updated","data":{"customerId":"c1"}}`)
	post := func(g *Gateway, id string) result {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		req.Header.Set(tokenHeader, token)
		req.Header.Set(idHeader, id)
		rec := httptest.NewRecorder()
		if err := g.ServeHTTP(rec, req, nil); err != nil {
			t.Fatal(err)
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatal(err)
		}
		return result{rec.Code, answer}
	}
	for _, signed := range []bool{false, true} {
		g, _ := newGateway(t, Async, normalize.OpenLoyalty)
		g.IDHeader, g.RequestIDSigned = idHeader, signed
		if r := post(g, "req-1"); r.code != http.StatusAccepted || r.answer["id"] != "req-1" {
			t.Fatalf("signed=%v: first: %d %v", signed, r.code, r.answer)
		}
		if r := post(g, "req-1"); r.code != http.StatusOK || r.answer["status"] != statusDuplicate {
			t.Errorf("signed=%v: same id again: %d %v, want duplicate", signed, r.code, r.answer)
		}
		r := post(g, "req-2")
		switch {
		case !signed && (r.code != http.StatusOK || r.answer["status"] != statusDuplicate || r.answer["id"] != "req-1"):
			t.Errorf("unsigned id rewritten: %d %v, want a duplicate of req-1", r.code, r.answer)
		case signed && (r.code != http.StatusAccepted || r.answer["id"] != "req-2"):
			t.Errorf("another signed id: %d %v, want a new event", r.code, r.answer)
		}
	}
}

type notifier struct {
	mu sync.Mutex
	n  int
}

func (n *notifier) Notify() {
	n.mu.Lock()
	n.n++
	n.mu.Unlock()
}

func (n *notifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.n
}

// trickle hands out its bytes a few at a time and records the largest
// buffer it was asked to fill, then fails as a reset connection would.
type trickle struct {
	data    []byte
	largest int
}

func (tr *trickle) Read(p []byte) (int, error) {
	tr.largest = max(tr.largest, len(p))
	if len(tr.data) == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p, tr.data[:min(len(tr.data), 7)])
	tr.data = tr.data[n:]
	return n, nil
}

func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	route := newBodyBudget(1<<30, 1<<30)
	budget := route.share("192.0.2.1")
	for _, arrived := range []int{1, 600, 5000} {
		tr := &trickle{data: bytes.Repeat([]byte("x"), arrived)}
		req := httptest.NewRequest(http.MethodPost, "/hooks", tr)
		req.ContentLength = 5_000_000 // declared, never sent
		_, held, err := readBody(req, DefaultMaxBodySize, budget, nil)
		if err == nil || err.Error() != "connection reset" {
			t.Fatalf("arrived %d: err %v", arrived, err)
		}
		if limit := max(2*arrived, firstChunk); tr.largest > limit || held > int64(limit) {
			t.Errorf("arrived %d: read into %d bytes, held %d, want at most %d", arrived, tr.largest, held, limit)
		}
		budget.release(held)
	}
	if used := route.used; used != 0 || len(route.byClient) != 0 {
		t.Errorf("budget still holds %d bytes: %v", used, route.byClient)
	}

	// An honest body ends in a buffer of its own size.
	body := bytes.Repeat([]byte("y"), 100_000)
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	got, held, err := readBody(req, DefaultMaxBodySize, budget, nil)
	if err != nil || !bytes.Equal(got, body) || held != int64(len(body))+1 {
		t.Fatalf("honest body: %d bytes, held %d, err %v", len(got), held, err)
	}

	// Without a declared length the limit still holds.
	req = httptest.NewRequest(http.MethodPost, "/hooks", io.MultiReader(bytes.NewReader(body), bytes.NewReader(body)))
	req.ContentLength = -1
	var tooLarge *http.MaxBytesError
	if _, _, err := readBody(req, 150_000, budget, nil); !errors.As(err, &tooLarge) {
		t.Fatalf("chunked over the limit: %v", err)
	}
}

func TestUnverifiedBudgetRefusesAndComesBack(t *testing.T) {
	g, obs := newGateway(t, Async, normalize.USAePay)
	// A signature covers the body, so every body is read unverified.
	const key = "signing-key"
	sig, err := verify.NewHMAC(verify.HMACConfig{Keys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	g.Verifiers, g.SecretHeaders = []verify.Verifier{sig}, sig.SecretHeaders()
	g.MaxUnverified = 2048
	// Another client, so that the share of this one is not what refuses.
	budget := g.unverifiedBudget().share("198.51.100.7")
	body := testdata(t, "usaepay", "transaction.sale.success")
	signed := func(signature string) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		req.Header.Set(verify.DefaultHMACHeader, signature)
		return req
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	good := hex.EncodeToString(mac.Sum(nil))

	// Other requests hold most of the budget while this one is read.
	if err := budget.reserve(2048 - 100); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, signed(good), nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		rec.Header().Get("Connection") != "close" || obs.get("usaepay/overloaded") != 1 {
		t.Fatalf("over the budget: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	budget.release(2048 - 100)

	for _, tc := range []struct {
		signature string
		want      int
	}{{good, http.StatusAccepted}, {strings.Repeat("0", 64), http.StatusUnauthorized}} {
		rec := httptest.NewRecorder()
		if err := g.ServeHTTP(rec, signed(tc.signature), nil); err != nil || rec.Code != tc.want {
			t.Fatalf("within the budget: %d %v, want %d", rec.Code, err, tc.want)
		}
	}
	if used := g.budget.used; used != 0 || len(g.budget.byClient) != 0 {
		t.Errorf("budget still holds %d bytes after the requests ended: %v", used, g.budget.byClient)
	}
}

// untouchable is a body that fails the test if anything reads it.
type untouchable struct{ t *testing.T }

func (u untouchable) Read([]byte) (int, error) {
	u.t.Error("the body was read before the header check")
	return 0, io.EOF
}

func TestHeaderCheckFailsBeforeTheBodyIsRead(t *testing.T) {
	g, obs := newGateway(t, Async, normalize.USAePay)
	req := httptest.NewRequest(http.MethodPost, "/hooks", untouchable{t})
	req.ContentLength = 4096
	req.Header.Set(tokenHeader, "wrong")
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Connection") != "close" || obs.get("usaepay/unauthorized") != 1 {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	// A route whose checks all need no body does not count its
	// authenticated senders' bodies as unverified: a budget of one byte
	// does not stop them.
	g.MaxUnverified = 1
	if r := serve(t, g, http.MethodPost, testdata(t, "usaepay", "transaction.sale.success"), nil); r.code != http.StatusAccepted {
		t.Fatalf("%d %v", r.code, r.answer)
	}
}

func TestDeclaredOverLimitClosesTheConnection(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.USAePay)
	req := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader("{"))
	req.Header.Set(tokenHeader, token)
	req.ContentLength = 12 << 20
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Connection") != "close" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

// A client that hangs up once its body is in cancels the request's
// context; the event is stored, forwarded and recorded all the same.
func TestCancelledRequestStillStoresAndDelivers(t *testing.T) {
	body := testdata(t, "usaepay", "transaction.sale.success")
	cancelled := func() *http.Request {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/hooks", bytes.NewReader(body))
		req.Header.Set(tokenHeader, token)
		return req
	}

	g, _ := newGateway(t, Async, normalize.USAePay)
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, cancelled(), nil); err != nil || rec.Code != http.StatusAccepted {
		t.Fatalf("async: %d %v %s", rec.Code, err, rec.Body)
	}
	if stored, err := g.Store.Get(context.Background(), "/usaepay", exampleID); err != nil || stored.Status != store.StatusPending {
		t.Fatalf("async stored: %v %v", stored, err)
	}

	g, _ = newGateway(t, Sync, normalize.USAePay)
	next := func(w http.ResponseWriter, r *http.Request) error {
		if err := r.Context().Err(); err != nil {
			return err // as reverse_proxy does with a cancelled context
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rec = httptest.NewRecorder()
	if err := g.ServeHTTP(rec, cancelled(), next); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("sync: %d %v %s", rec.Code, err, rec.Body)
	}
	if stored, err := g.Store.Get(context.Background(), "/usaepay", exampleID); err != nil || stored.Status != store.StatusDelivered {
		t.Fatalf("sync stored: %v %v", stored, err)
	}
}

func TestStoredHeadersAreAllowListed(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.USAePay)
	body := testdata(t, "usaepay", "transaction.sale.success")
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	req.Header.Set(tokenHeader, token)
	for _, h := range []string{"Proxy-Authorization", "Authorization", "Cookie", "X-Signature", "X-Anything"} {
		req.Header.Set(h, "secret")
	}
	req.Header.Set("User-Agent", "provider/1")
	req.Header.Set("X-Webhook-Request-Id", "6b1f")
	rec := httptest.NewRecorder()
	if err := g.ServeHTTP(rec, req, nil); err != nil || rec.Code != http.StatusAccepted {
		t.Fatalf("%d %v", rec.Code, err)
	}
	stored, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"User-Agent": {"provider/1"}, "X-Webhook-Request-Id": {"6b1f"}}
	if len(stored.Headers) != len(want) || stored.Headers.Get("User-Agent") != "provider/1" ||
		stored.Headers.Get("X-Webhook-Request-Id") != "6b1f" {
		t.Fatalf("stored headers %v, want %v", stored.Headers, want)
	}
}

// TestCredentialsStrippedFromTheRequest: once the gateway has answered, the
// request it was handed carries neither the secret header nor the secret
// path segment or query value, accepted or refused, so nothing reading it
// later finds them; the sync forward still reaches the backend, on the
// redacted path.
func TestCredentialsStrippedFromTheRequest(t *testing.T) {
	const pathSecret = "p4th+s3cret"
	g, _ := newGateway(t, Sync, normalize.USAePay)
	ps, err := verify.NewPathSecret(pathSecret)
	if err != nil {
		t.Fatal(err)
	}
	g.Verifiers = append(g.Verifiers, ps)
	var forwarded []string
	next := func(w http.ResponseWriter, r *http.Request) error {
		forwarded = append(forwarded, r.URL.RequestURI())
		w.WriteHeader(http.StatusOK)
		return nil
	}
	body := testdata(t, "usaepay", "transaction.sale.success")
	target := "/hooks/" + pathSecret + "/x?token=" + pathSecret + "&keep=1"
	const wantURI = "/hooks/REDACTED/x?token=REDACTED&keep=1"

	for _, tc := range []struct {
		name  string
		value string
		code  int
	}{
		{"accepted", token, http.StatusOK},
		{"refused", "a-near-miss", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
			req.Header.Set(tokenHeader, tc.value)
			req.Header.Set("User-Agent", "provider/1")
			rec := httptest.NewRecorder()
			if err := g.ServeHTTP(rec, req, next); err != nil || rec.Code != tc.code {
				t.Fatalf("%d %v %s, want %d", rec.Code, err, rec.Body, tc.code)
			}
			if v := req.Header.Values(tokenHeader); len(v) != 0 {
				t.Errorf("the request still carries %s: %q", tokenHeader, v)
			}
			if req.Header.Get("User-Agent") != "provider/1" {
				t.Errorf("a header that is no credential was removed: %v", req.Header)
			}
			if req.RequestURI != wantURI || req.URL.RequestURI() != wantURI {
				t.Errorf("request URI %q, URL %q, want %q", req.RequestURI, req.URL.RequestURI(), wantURI)
			}
		})
	}
	if len(forwarded) != 1 || forwarded[0] != wantURI {
		t.Fatalf("forwarded %q, want once to %q", forwarded, wantURI)
	}
}
