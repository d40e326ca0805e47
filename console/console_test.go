package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/console"
	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// Hostile content a provider (or whoever can reach a route) may put in an
// event; the console must show it as text.
const (
	xssScript = `<script>alert("x")</script>`
	xssAttr   = `"><img src=x onerror=alert(1)>`
)

// fixture is a console on a real Badger store with an async route for
// /usaepay (a real delivery engine in front of a loopback backend) and a
// sync route for /sublytics.
type fixture struct {
	db      *badger.Store
	backend *backend
	srv     *httptest.Server
	client  *http.Client
	// reads counts the events read one by one (Get), by the console and
	// the delivery engine alike.
	reads *readCounter
	// engine delivers to /usaepay (not started: replays only).
	engine *delivery.Engine
}

// consoleSigningSecret signs the fixture's deliveries.
const consoleSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// readCounter is a store that counts the events read one by one.
type readCounter struct {
	store.Store
	n atomic.Int64
}

func (c *readCounter) Get(ctx context.Context, source, id string) (*store.Record, error) {
	c.n.Add(1)
	return c.Store.Get(ctx, source, id)
}

type backend struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	hits   []http.Header
}

func (b *backend) setStatus(s int) {
	b.mu.Lock()
	b.status = s
	b.mu.Unlock()
}

func (b *backend) received() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]http.Header(nil), b.hits...)
}

// newBackend is the merchant's backend on loopback: it records each
// request's headers and answers the status set last.
func newBackend(t *testing.T) *backend {
	be := &backend{status: http.StatusOK}
	be.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		be.mu.Lock()
		be.hits = append(be.hits, r.Header.Clone())
		status := be.status
		be.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(be.Close)
	return be
}

// stores is one store, found the way the Caddy module finds it.
type stores struct{ t ops.Target }

func (s stores) Names() []string { return []string{s.t.Name} }

func (s stores) Target(name string) (ops.Target, error) {
	if name != "" && name != s.t.Name {
		return ops.Target{}, ops.Mark(ops.ErrInvalid, fmt.Errorf("unknown store %q", name))
	}
	return s.t, nil
}

func newFixture(t *testing.T) *fixture { return newFixtureRefreshing(t, 0) }

// newFixtureRefreshing is newFixture with the overview's refresh period.
func newFixtureRefreshing(t *testing.T, refresh time.Duration) *fixture {
	t.Helper()
	db, err := badger.Open(t.TempDir(), badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	be := newBackend(t)
	reads := &readCounter{Store: db}
	signer, err := delivery.NewSigner(consoleSigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := delivery.New(delivery.Config{
		Store:       reads,
		Destination: "/usaepay",
		Upstreams:   []string{be.URL + "/hooks"},
		Workers:     2,
		Timeout:     5 * time.Second,
		Headers:     delivery.NewHeaderBuilder(signer),
	})
	if err != nil {
		t.Fatal(err)
	}
	target := ops.Target{
		Name:    "test-store",
		Store:   reads,
		Sources: []string{"/sublytics", "/usaepay"},
		Replayer: func(destination string) (ops.Replayer, error) {
			if destination == "/usaepay" {
				return engine, nil
			}
			return nil, fmt.Errorf("the events of source %s are delivered synchronously (deliver sync): replay needs an async route with upstreams", destination)
		},
		Destinations: func() []ops.LiveDestination {
			return []ops.LiveDestination{{Name: "/usaepay", Sources: []string{"/usaepay"}, Breaker: engine.Breaker().State.String(), PausedByOperator: engine.Held()}}
		},
		Pause: func(destination string, paused bool) error {
			if destination != "/usaepay" {
				return fmt.Errorf("no loaded route delivers to destination %q", destination)
			}
			engine.Hold(paused)
			return nil
		},
	}
	c, err := console.New(console.Config{Stores: stores{target}, Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// Mounted under a prefix, as a Caddy route would have it.
	mux.Handle("/console/", c)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &fixture{db: db, backend: be, srv: srv, client: client, reads: reads, engine: engine}
}

var base = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// insert stores one event as the request path would, with one attempt per
// entry of attempts (an HTTP status; 0 for a network error).
func (f *fixture) insert(t *testing.T, source, id, typ, subject string, status store.Status, at time.Time, attempts ...int) {
	t.Helper()
	f.insertTo(t, []string{source}, source, id, typ, subject, status, at, attempts...)
}

// insertTo stores one event with a delivery to each of dests, and drives
// each through the store's transitions to status, as the engine would:
// one attempt per entry of attempts (an HTTP status; 0 for a network
// error), the last one deciding. Reserved is a sync delivery in flight
// (one destination).
func (f *fixture) insertTo(t *testing.T, dests []string, source, id, typ, subject string, status store.Status, at time.Time, attempts ...int) {
	t.Helper()
	ctx := context.Background()
	ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": source, "type": typ, "subject": subject, "data": map[string]any{"note": subject}})
	rec := &store.Record{
		Source: source, ID: id, Provider: strings.TrimPrefix(source, "/"), Type: typ, Subject: subject, ReceivedAt: at,
		Event:   ev,
		Headers: http.Header{"User-Agent": {"provider/1.0"}, "X-Note": {subject}},
	}
	for _, d := range dests {
		del := store.Delivery{Destination: d}
		if status == store.StatusReserved {
			del.Status = store.StatusReserved
		}
		rec.Deliveries = append(rec.Deliveries, del)
	}
	raw := fmt.Sprintf(`{"event_type":%q,"event_id":%q,"note":%q}`, typ, id, subject)
	res, err := f.db.Insert(ctx, &store.Ingest{RawBody: []byte(raw), Records: []*store.Record{rec}}, true)
	if err != nil || !res[0].Inserted {
		t.Fatalf("insert %s %s: %v %+v", source, id, err, res)
	}
	if status == store.StatusReserved || status == store.StatusPending && len(attempts) == 0 {
		return
	}
	for _, dest := range dests {
		for i, code := range attempts {
			a := store.Attempt{Number: i + 1, At: at.Add(time.Duration(i+1) * time.Second), Status: code, Latency: 3 * time.Millisecond}
			if code == 0 {
				a.Error = "dial tcp 127.0.0.1:9: connection refused"
			} else if code >= 300 {
				a.Error = fmt.Sprintf("backend answered %d", code)
			}
			dec := store.RetryAt(at) // due again at once
			if i == len(attempts)-1 {
				switch status {
				case store.StatusDead:
					dec = store.Dead(store.DeadAttemptsExhausted)
					if code == http.StatusGone {
						dec = store.Dead(store.DeadGone)
					}
				case store.StatusDelivered:
					dec = store.Delivered()
				case store.StatusRetrying:
					dec = store.RetryAt(time.Now().Add(time.Hour))
				}
			}
			f.claimOne(t, source, id, dest)
			if err := f.db.RecordAttempt(ctx, source, id, dest, "fixture", a, dec); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// claimOne leases the delivery of source/id to dest for "fixture", giving
// back the others it claims on the way.
func (f *fixture) claimOne(t *testing.T, source, id, dest string) {
	t.Helper()
	ctx := context.Background()
	for {
		claimed, err := f.db.Claim(ctx, "fixture", []string{dest}, time.Now(), time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range claimed {
			if c.Record.Source == source && c.Record.ID == id {
				found = true
			} else if err := f.db.ReleaseLease(ctx, c.Record.Source, c.Record.ID, c.Destination, "fixture"); err != nil {
				t.Fatal(err)
			}
		}
		if found {
			return
		}
		if len(claimed) == 0 {
			t.Fatalf("nothing of %s %s to %s to claim", source, id, dest)
		}
	}
}

// seed stores the events most tests use.
func (f *fixture) seed(t *testing.T) {
	f.insert(t, "/usaepay", "dead-1", "transaction.sale.success", "key-dead-1", store.StatusDead, base, 503, 503)
	f.insert(t, "/usaepay", "dead-2", "transaction.sale.failure", "key-dead-2", store.StatusDead, base.Add(time.Minute), 0)
	f.insert(t, "/usaepay", "ok-1", "transaction.sale.success", "key-ok-1", store.StatusDelivered, base.Add(2*time.Minute), 200)
	f.insert(t, "/sublytics", "4806", "order_updated", "order-9", store.StatusDead, base.Add(3*time.Minute), 500)
	f.insert(t, "/usaepay", "pending-1", "ach.settled", "key-p-1", store.StatusPending, base.Add(4*time.Minute))
}

func (f *fixture) url(page string, q url.Values) string {
	u := f.srv.URL + "/console/" + page
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// get fetches a console page and returns its status and body.
func (f *fixture) get(t *testing.T, page string, q url.Values) (int, string, http.Header) {
	t.Helper()
	resp, err := f.client.Get(f.url(page, q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// post submits a form the way the console's own pages do: a browser sends
// Sec-Fetch-Site: same-origin with it.
func (f *fixture) post(t *testing.T, page string, form url.Values, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url(page, nil), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", f.srv.URL)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}

func mustNotContain(t *testing.T, body string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(body, u) {
			t.Errorf("page contains %q", u)
		}
	}
}

func (f *fixture) status(t *testing.T, source, id string) store.Status {
	t.Helper()
	rec, err := f.db.Get(context.Background(), source, id)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Status
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	for _, page := range []string{"", "live", "events", "event?source=/usaepay&id=dead-1", "confirm?action=purge&status=dead", "nope", "console.js", "console.css"} {
		resp, err := f.client.Get(f.srv.URL + "/console/" + page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", page, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", page, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", page)
		}
	}
}

func TestOverviewCountsPerStatusAndSource(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	code, body, _ := f.get(t, "", nil)
	if code != http.StatusOK {
		t.Fatalf("overview: %d\n%s", code, body)
	}
	mustContain(t, body,
		`<span class="num" id="queue-depth">1</span>`,
		`<span class="num" id="dead-events">3</span>`,
		`<span class="num" id="total">5</span>`,
		`href="events?source=%2Fsublytics"`,
		`href="events?source=%2Fusaepay&amp;status=dead">2</a>`,
		`data-src="live"`,
		`<script src="console.js" defer></script>`,
	)
	mustNotContain(t, body, "Counted over the newest")

	// The refresh fetches only the live part.
	code, part, _ := f.get(t, "live", nil)
	if code != http.StatusOK {
		t.Fatalf("live: %d", code)
	}
	if !strings.HasPrefix(strings.TrimSpace(part), `<section id="live"`) || strings.Contains(part, "<html") {
		t.Errorf("live part is not just the section:\n%s", part)
	}
	mustContain(t, part, `<span class="num" id="dead-events">3</span>`)
}

// Refreshes share one count per period; loading the page counts afresh.
func TestOverviewRefreshesShareCounts(t *testing.T) {
	f := newFixtureRefreshing(t, time.Hour)
	f.seed(t)
	if _, body, _ := f.get(t, "", nil); !strings.Contains(body, `id="dead-events">3<`) {
		t.Fatalf("overview:\n%s", body)
	}
	f.insert(t, "/usaepay", "dead-3", "transaction.sale.success", "k3", store.StatusDead, base.Add(time.Hour), 503)
	for range 3 {
		if _, part, _ := f.get(t, "live", nil); !strings.Contains(part, `id="dead-events">3<`) {
			t.Fatalf("a refresh within the period counted again:\n%s", part)
		}
	}
	if _, body, _ := f.get(t, "", nil); !strings.Contains(body, `id="dead-events">4<`) {
		t.Errorf("loading the page did not count afresh:\n%s", body)
	}
	if _, part, _ := f.get(t, "live", nil); !strings.Contains(part, `id="dead-events">4<`) {
		t.Errorf("the refresh after it shows older counts:\n%s", part)
	}
}

func TestEventListFilters(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	cases := []struct {
		name      string
		q         url.Values
		want, not []string
	}{
		{"all, newest first", nil, []string{"pending-1", "4806", "ok-1", "dead-2", "dead-1"}, nil},
		{"status", url.Values{"status": {"dead"}}, []string{"dead-1", "dead-2", "4806"}, []string{"ok-1", "pending-1"}},
		{"source", url.Values{"source": {"/sublytics"}}, []string{"4806"}, []string{"dead-1"}},
		{"provider", url.Values{"provider": {"usaepay"}}, []string{"dead-1", "ok-1"}, []string{"4806"}},
		{"type", url.Values{"type": {"transaction.sale.success"}}, []string{"dead-1", "ok-1"}, []string{"dead-2", "pending-1"}},
		// datetime-local values, read as UTC: [10:01, 10:03) holds dead-2 and ok-1.
		{"time range", url.Values{"from": {"2026-11-20T10:01"}, "to": {"2026-11-20T10:03"}}, []string{"dead-2", "ok-1"}, []string{"dead-1", "4806"}},
		{"subject", url.Values{"subject": {"order-9"}}, []string{"4806", `name="subject" id="subject" value="order-9"`}, []string{"dead-1", "ok-1"}},
		{"subject and status", url.Values{"subject": {"key-dead-1"}, "status": {"dead"}}, []string{"dead-1"}, []string{"4806", "dead-2"}},
		{"id", url.Values{"id": {"4806"}}, []string{"4806", "Looked up id"}, []string{"dead-1"}},
		{"id in a source", url.Values{"id": {"4806"}, "source": {"/usaepay"}}, []string{"No event matches"}, []string{"id=4806"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := f.get(t, "events", tc.q)
			if code != http.StatusOK {
				t.Fatalf("%d\n%s", code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("lacks %s", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, "id="+n+`"`) {
					t.Errorf("shows %s", n)
				}
			}
		})
	}

	// Newest first: the rows come in receive order, newest on top.
	_, body, _ := f.get(t, "events", nil)
	if i, j := strings.Index(body, "id=pending-1"), strings.Index(body, "id=dead-1"); i < 0 || j < 0 || i > j {
		t.Errorf("not newest first: pending-1 at %d, dead-1 at %d", i, j)
	}
	// A row shows received time, source, type, subject, status, attempts
	// and the last result.
	mustContain(t, body, "2026-11-20 10:00:00 UTC", "key-dead-1", `<span class="status status-dead">dead</span>`, "503 backend answered 503", "connection refused")

	for _, bad := range []url.Values{{"status": {"gone"}}, {"from": {"yesterday"}}, {"cursor": {"!!"}}, {"from": {"2026-11-20T11:00"}, "to": {"2026-11-20T10:00"}}} {
		if code, body, _ := f.get(t, "events", bad); code != http.StatusBadRequest {
			t.Errorf("%v: got %d, want 400\n%s", bad, code, body)
		}
	}
}

func TestEventListPagesWithTheStoreCursor(t *testing.T) {
	f := newFixture(t)
	for i := range 60 {
		f.insert(t, "/usaepay", fmt.Sprintf("ev-%02d", i), "ach.settled", "", store.StatusDelivered, base.Add(time.Duration(i)*time.Second), 200)
	}
	_, body, _ := f.get(t, "events", url.Values{"status": {"delivered"}})
	if n := strings.Count(body, `href="event?`); n != 50 {
		t.Fatalf("first page has %d events, want 50", n)
	}
	i := strings.Index(body, `id="older" href="`)
	if i < 0 {
		t.Fatal("no link to the older events")
	}
	next := body[i+len(`id="older" href="`):]
	next = strings.ReplaceAll(next[:strings.IndexByte(next, '"')], "&amp;", "&")
	u, err := url.Parse(next)
	if err != nil || u.Query().Get("cursor") == "" || u.Query().Get("status") != "delivered" {
		t.Fatalf("older link %q keeps no cursor or filter", next)
	}
	_, body, _ = f.get(t, "events", u.Query())
	if n := strings.Count(body, `href="event?`); n != 10 {
		t.Errorf("second page has %d events, want 10", n)
	}
	mustContain(t, body, "ev-09", "ev-00", "« Newest")
	mustNotContain(t, body, "ev-10", `id="older"`)
}

func TestEventPageShowsEverythingStored(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	code, body, _ := f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}})
	if code != http.StatusOK {
		t.Fatalf("%d\n%s", code, body)
	}
	mustContain(t, body,
		`<span class="status status-dead">dead</span>`,
		"&#34;specversion&#34;: &#34;1.0&#34;", // the canonical event, indented
		"<th>User-Agent</th><td>provider/1.0</td>",
		"{&#34;event_type&#34;:&#34;transaction.sale.success&#34;", // the raw body as received
		"backend answered 503",
		`id="replay"`,
	)
	if n := strings.Count(body, "<td class=\"num\">503</td>"); n != 2 {
		t.Errorf("attempt timeline shows %d attempts with 503, want 2", n)
	}

	// A sync route's event says why it cannot be replayed, and offers no button.
	_, body, _ = f.get(t, "event", url.Values{"source": {"/sublytics"}, "id": {"4806"}})
	mustContain(t, body, `id="cannot-replay"`, "delivered synchronously (deliver sync)")
	mustNotContain(t, body, `id="replay"`)

	if code, _, _ := f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"nope"}}); code != http.StatusNotFound {
		t.Errorf("unknown event: %d, want 404", code)
	}
	if code, _, _ := f.get(t, "event", url.Values{"id": {"dead-1"}}); code != http.StatusBadRequest {
		t.Errorf("no source: %d, want 400", code)
	}
	if code, _, _ := f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}, "store": {"other"}}); code != http.StatusBadRequest {
		t.Errorf("unknown store: %d, want 400", code)
	}
}

func TestHostileEventDataIsInertText(t *testing.T) {
	f := newFixture(t)
	hostile := xssScript + xssAttr
	f.insert(t, "/usaepay", "xss", "transaction."+xssAttr, hostile, store.StatusDead, base, 503)
	pages := map[string]url.Values{
		"":        nil,
		"events":  nil,
		"event":   {"source": {"/usaepay"}, "id": {"xss"}},
		"confirm": {"action": {"replay"}, "type": {"transaction." + xssAttr}},
	}
	for page, q := range pages {
		code, body, _ := f.get(t, page, q)
		if code != http.StatusOK {
			t.Fatalf("%s: %d\n%s", page, code, body)
		}
		mustNotContain(t, body, "<script>alert", "<img src=x", `"><img`)
		if page != "" && !strings.Contains(body, "&lt;script&gt;alert(") && !strings.Contains(body, `\u003cscript\u003ealert(`) {
			t.Errorf("%s: the hostile text is not shown escaped", page)
		}
	}
	_, body, _ := f.get(t, "event", pages["event"])
	mustContain(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;")
}

func TestReplayOneAfterTheBackendRecovers(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	ev := url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}

	f.backend.setStatus(http.StatusServiceUnavailable)
	code, _, h := f.post(t, "replay", ev)
	if code != http.StatusSeeOther {
		t.Fatalf("replay: %d, want 303", code)
	}
	if f.status(t, "/usaepay", "dead-1") != store.StatusDead {
		t.Error("a failed replay changed the status")
	}

	f.backend.setStatus(http.StatusOK)
	code, _, h = f.post(t, "replay", ev)
	if code != http.StatusSeeOther {
		t.Fatalf("replay: %d, want 303", code)
	}
	loc := h.Get("Location")
	if loc != "event?id=dead-1&replayed=1&source=%2Fusaepay" {
		t.Errorf("redirect to %q", loc)
	}
	if s := f.status(t, "/usaepay", "dead-1"); s != store.StatusDelivered {
		t.Errorf("status after a 200 replay: %s", s)
	}
	hits := f.backend.received()
	if len(hits) != 2 || hits[1].Get("Webhook-Replay") != "true" {
		t.Fatalf("backend got %d requests: %v", len(hits), hits)
	}
	u, _ := url.Parse(loc)
	_, body, _ := f.get(t, "event", u.Query())
	mustContain(t, body, `id="replayed"`, `<span class="status status-delivered">delivered</span>`, `<tr class="replay">`, `<span class="mark">replay</span>`)
}

func TestReplayRefusals(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	f.insert(t, "/usaepay", "reserved-1", "ach.settled", "", store.StatusReserved, base)
	cases := []struct {
		name   string
		form   url.Values
		header []string
		code   int
		want   string
	}{
		{"sync route", url.Values{"source": {"/sublytics"}, "id": {"4806"}}, nil, http.StatusConflict, "delivered synchronously"},
		{"in flight", url.Values{"source": {"/usaepay"}, "id": {"reserved-1"}}, nil, http.StatusConflict, "synchronously"},
		{"unknown", url.Values{"source": {"/usaepay"}, "id": {"nope"}}, nil, http.StatusNotFound, "no event /usaepay nope"},
		{"empty filter", url.Values{}, nil, http.StatusBadRequest, "empty filter"},
		{"sync source by filter", url.Values{"source": {"/sublytics"}}, nil, http.StatusConflict, "deliver sync"},
		{"cross-site", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}, []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross-site"},
		{"other origin", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}, []string{"Sec-Fetch-Site", "", "Origin", "http://attacker.example"}, http.StatusForbidden, "cross-site"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := f.post(t, "replay", tc.form, tc.header...)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("got %d, want %d with %q:\n%s", code, tc.code, tc.want, body)
			}
		})
	}
	if n := len(f.backend.received()); n != 0 {
		t.Errorf("refused replays reached the backend %d times", n)
	}
	// A GET never acts.
	if code, _, h := f.get(t, "replay", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}); code != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" {
		t.Errorf("GET replay: %d, Allow %q", code, h.Get("Allow"))
	}
	if code, _, _ := f.get(t, "purge", url.Values{"status": {"dead"}}); code != http.StatusMethodNotAllowed {
		t.Errorf("GET purge: %d", code)
	}
	if f.status(t, "/usaepay", "dead-1") != store.StatusDead {
		t.Error("a refused request replayed the event")
	}
}

func TestReplayByFilterPreviewsThenConfirms(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	filter := url.Values{"status": {"dead"}, "provider": {"usaepay"}}

	q := url.Values{"action": {"replay"}}
	for k, v := range filter {
		q[k] = v
	}
	code, body, _ := f.get(t, "confirm", q)
	if code != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	mustContain(t, body, "Replay 2 events?", "Dry run: 2 would be sent", "Webhook-Replay", "dead-1", "dead-2",
		`<input type="hidden" name="status" value="dead">`, `<input type="hidden" name="provider" value="usaepay">`, "Replay 2 events now")
	if n := len(f.backend.received()); n != 0 {
		t.Fatalf("the dry run sent %d requests", n)
	}

	// Every dead event: the sync route's is skipped, and the page says so.
	_, body, _ = f.get(t, "confirm", url.Values{"action": {"replay"}, "status": {"dead"}})
	mustContain(t, body, "Replay 3 events?", "1 skipped (no async route")

	code, body, _ = f.post(t, "replay", filter)
	if code != http.StatusOK {
		t.Fatalf("replay: %d\n%s", code, body)
	}
	mustContain(t, body, "Replayed 2 events", "2 delivered, 0 failed, 0 skipped")
	for _, id := range []string{"dead-1", "dead-2"} {
		if s := f.status(t, "/usaepay", id); s != store.StatusDelivered {
			t.Errorf("%s is %s after the replay", id, s)
		}
	}
	if s := f.status(t, "/sublytics", "4806"); s != store.StatusDead {
		t.Errorf("an event outside the filter is %s", s)
	}
}

func TestPurgeByFilterPreviewsThenConfirms(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	code, body, _ := f.get(t, "confirm", url.Values{"action": {"purge"}, "status": {"dead"}, "source": {"/usaepay"}})
	if code != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	mustContain(t, body, "Purge 2 events?", "cannot be undone", "Delete 2 events now")
	if _, err := f.db.Get(context.Background(), "/usaepay", "dead-1"); err != nil {
		t.Fatal("the preview deleted an event")
	}

	code, body, _ = f.post(t, "purge", url.Values{"status": {"dead"}, "source": {"/usaepay"}})
	if code != http.StatusOK {
		t.Fatalf("purge: %d\n%s", code, body)
	}
	mustContain(t, body, "Deleted 2 events")
	counts, _ := f.db.Counts(context.Background())
	if counts[store.StatusDead] != 1 || counts[store.StatusDelivered] != 1 {
		t.Errorf("counts after the purge: %v", counts)
	}

	// An empty filter: the preview says it is everything and carries the
	// explicit all; without it the POST is refused.
	_, body, _ = f.get(t, "confirm", url.Values{"action": {"purge"}})
	mustContain(t, body, "this selects every stored event", `<input type="hidden" name="all" value="true">`, "Purge 3 events?")
	if code, body, _ := f.post(t, "purge", url.Values{}); code != http.StatusBadRequest || !strings.Contains(body, "empty filter") {
		t.Errorf("purge without a filter: %d\n%s", code, body)
	}
	if code, body, _ := f.post(t, "purge", url.Values{"status": {"dead"}}, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site purge: %d\n%s", code, body)
	}
	if code, body, _ := f.post(t, "purge", url.Values{"all": {"true"}}); code != http.StatusOK || !strings.Contains(body, "Deleted 3 events") {
		t.Errorf("purge all: %d\n%s", code, body)
	}
	if code, _, _ := f.get(t, "confirm", url.Values{"action": {"drop"}}); code != http.StatusBadRequest {
		t.Errorf("unknown action: %d", code)
	}
}

func TestAssetsAndUnknownPages(t *testing.T) {
	f := newFixture(t)
	code, body, h := f.get(t, "console.js", nil)
	if code != http.StatusOK || !strings.Contains(h.Get("Content-Type"), "javascript") || !strings.Contains(body, "DOMParser") {
		t.Errorf("console.js: %d %q", code, h.Get("Content-Type"))
	}
	code, _, h = f.get(t, "console.css", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") {
		t.Errorf("console.css: %d %q", code, h.Get("Content-Type"))
	}
	resp, err := f.client.Get(f.srv.URL + "/console/events?status=%zz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed query: %d, want 400", resp.StatusCode)
	}
	if code, body, _ := f.get(t, "settings", nil); code != http.StatusNotFound || !strings.Contains(body, "no console page") {
		t.Errorf("unknown page: %d\n%s", code, body)
	}
}

// With the prefix stripped (Caddy's handle_path), the relative links and
// the redirect after a replay still land under the prefix.
func TestWorksUnderAStrippedPrefix(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	c, err := console.New(console.Config{Stores: stores{ops.Target{Name: "s", Store: f.db, Replayer: func(string) (ops.Replayer, error) {
		return nil, fmt.Errorf("no route")
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/ops", c))
	defer srv.Close()
	for path, want := range map[string]string{"/ops/": `id="dead-events"`, "/ops/events?status=dead": `href="event?id=dead-1&amp;source=%2Fusaepay"`, "/ops/console.js": "DOMParser"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
}

// TestReplayConfirmationIsPagedAndMasked: the confirmation of a replay by
// filter counts every matching event but prepares (reads) only the
// requests it shows, and shows their signatures masked: a dry run's
// signature is fresh and the backend would accept it.
func TestReplayConfirmationIsPagedAndMasked(t *testing.T) {
	f := newFixture(t)
	const n = 25
	for i := range n {
		f.insert(t, "/usaepay", fmt.Sprintf("bulk-%02d", i), "transaction.sale.success", "s", store.StatusDead, base.Add(time.Duration(i)*time.Second), 503)
	}
	before := f.reads.n.Load()
	code, body, _ := f.get(t, "confirm", url.Values{"action": {"replay"}, "status": {"dead"}})
	if code != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	mustContain(t, body, fmt.Sprintf("Replay %d events?", n), fmt.Sprintf("Dry run: %d would be sent", n),
		fmt.Sprintf("Replay %d events now", n), fmt.Sprintf("and %d more", n-10))
	if shown := strings.Count(body, `<details class="preview"`); shown != 10 {
		t.Errorf("%d requests shown, want 10", shown)
	}
	if reads := f.reads.n.Load() - before; reads != 10 {
		t.Errorf("the confirmation read %d events one by one, want the 10 it shows", reads)
	}
	if len(f.backend.received()) != 0 {
		t.Fatal("the confirmation sent a request")
	}

	// Every signature shown is the start of the real one, masked.
	text := html.UnescapeString(body)
	signer, err := delivery.NewSigner(consoleSigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	cell := func(chunk, name string) string {
		m := regexp.MustCompile(`<th>` + name + `</th><td>([^<]*)</td>`).FindStringSubmatch(chunk)
		if m == nil {
			t.Fatalf("no %s shown in:\n%s", name, chunk)
		}
		return html.UnescapeString(m[1])
	}
	chunks := strings.Split(body, `<details class="preview"`)[1:]
	for _, chunk := range chunks {
		id := cell(chunk, "Webhook-Id")
		unix, err := strconv.ParseInt(cell(chunk, "Webhook-Timestamp"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := f.db.Get(context.Background(), "/usaepay", id)
		if err != nil {
			t.Fatal(err)
		}
		full, err := signer.Sign(id, time.Unix(unix, 0), rec.Event)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, strings.TrimPrefix(full, "v1,")) {
			t.Fatalf("the page shows the full signature of %s: %s", id, full)
		}
		if shown := cell(chunk, "Webhook-Signature"); !strings.HasSuffix(shown, "…") || !strings.HasPrefix(full, strings.TrimSuffix(shown, "…")) {
			t.Errorf("%s: signature shown as %q, want the start of %q, masked", id, shown, full)
		}
	}
}

// An event's page is headed by its type and subject, with its id below,
// and a dead event says why it is dead, there and in the list.
func TestEventPageHeadingAndDeadReason(t *testing.T) {
	f := newFixture(t)
	f.insert(t, "/usaepay", "gone-1", "ach.returned", "tx-7", store.StatusDead, base, 410)
	_, body, _ := f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"gone-1"}})
	mustContain(t, body, `<h1>ach.returned <span class="subject" id="subject">tx-7</span></h1>`, `id <code id="event-id">gone-1</code>`,
		`<title>ach.returned tx-7 · webhook gateway</title>`, `<dd id="dead-reason">the backend answered 410 Gone</dd>`)
	_, body, _ = f.get(t, "events", url.Values{"status": {"dead"}})
	mustContain(t, body, `<span class="muted dead-reason">the backend answered 410 Gone</span>`)
}

// The subject on an event's page links to the list of every event about
// it, whatever their source; an event without a subject has no link.
func TestSubjectLinksToItsEvents(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	f.insert(t, "/sublytics", "4807", "order_updated", "cus-42", store.StatusDelivered, base.Add(5*time.Minute), 200)
	f.insert(t, "/openloyalty", "req-1#0", "points.added", "cus-42", store.StatusPending, base.Add(6*time.Minute))
	_, body, _ := f.get(t, "event", url.Values{"source": {"/sublytics"}, "id": {"4807"}})
	mustContain(t, body, `<a id="subject-link" href="events?subject=cus-42" title="every event about this subject">cus-42</a>`)
	code, body, _ := f.get(t, "events", url.Values{"subject": {"cus-42"}})
	if code != http.StatusOK {
		t.Fatalf("%d\n%s", code, body)
	}
	mustContain(t, body, "id=4807", "id=req-1%230")
	for _, other := range []string{"id=4806", "id=dead-1", "id=pending-1"} {
		if strings.Contains(body, other+`"`) || strings.Contains(body, other+"&") {
			t.Errorf("subject list shows %s", other)
		}
	}
	// Purge matching carries the subject to its confirmation.
	mustContain(t, body, `id="purge-matching" href="confirm?action=purge&amp;subject=cus-42"`)
	_, body, _ = f.get(t, "confirm", url.Values{"action": {"purge"}, "subject": {"cus-42"}})
	mustContain(t, body, "subject <code>cus-42</code>")

	f.insert(t, "/usaepay", "nosubj", "ach.settled", "", store.StatusPending, base.Add(7*time.Minute))
	_, body, _ = f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"nosubj"}})
	if strings.Contains(body, "subject-link") {
		t.Error("an event without a subject links to a subject list")
	}
}

// Times are shown in the zone the operator picks (tz, then remembered in a
// cookie), with the zone named, and the filter's times are read in it.
func TestTimesInTheChosenZone(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	_, body, _ := f.get(t, "events", nil)
	mustContain(t, body, "2026-11-20 10:00:00 UTC", `<strong id="zone-name">UTC</strong>`, "From (UTC)", `id="zone-utc" href="events?tz=UTC"`)

	code, body, h := f.get(t, "events", url.Values{"tz": {"Asia/Tokyo"}})
	if code != http.StatusOK {
		t.Fatalf("tz=Asia/Tokyo: %d\n%s", code, body)
	}
	mustContain(t, body, "2026-11-20 19:00:00 JST", `<strong id="zone-name">Asia/Tokyo</strong>`, "From (Asia/Tokyo)", `<input type="hidden" name="tz" value="Asia/Tokyo">`)
	cookie := h.Get("Set-Cookie")
	if !strings.Contains(cookie, "webhook_gateway_tz=Asia/Tokyo") {
		t.Fatalf("the choice is not remembered: Set-Cookie %q", cookie)
	}

	// The cookie alone keeps the zone on the next page.
	req, _ := http.NewRequest(http.MethodGet, f.url("event", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}), nil)
	req.Header.Set("Cookie", strings.SplitN(cookie, ";", 2)[0])
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mustContain(t, string(page), "2026-11-20 19:00:00 JST")

	// 19:01 in Tokyo is 10:01 UTC: dead-2 (10:01) and later, not dead-1
	// (10:00).
	_, body, _ = f.get(t, "events", url.Values{"tz": {"Asia/Tokyo"}, "status": {"dead"}, "from": {"2026-11-20T19:01"}})
	if !strings.Contains(body, "id=dead-2") || strings.Contains(body, "id=dead-1&") {
		t.Errorf("from 19:01 Tokyo time should list dead-2 and not dead-1:\n%s", body)
	}
	// The confirmation of a purge by that filter carries its zone.
	_, body, _ = f.get(t, "confirm", url.Values{"action": {"purge"}, "tz": {"Asia/Tokyo"}, "status": {"dead"}, "from": {"2026-11-20T19:01"}})
	mustContain(t, body, "Purge 2 events?", `<input type="hidden" name="tz" value="Asia/Tokyo">`)

	for _, bad := range []string{"Mars/Olympus", "Local"} {
		if code, body, _ := f.get(t, "events", url.Values{"tz": {bad}}); code != http.StatusBadRequest || !strings.Contains(body, "time zone") {
			t.Errorf("tz=%s: %d\n%s", bad, code, body)
		}
	}
}

// One event is purged from its page after a confirmation, and nothing
// else with it.
func TestPurgeOneEventFromItsPage(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	_, body, _ := f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}})
	mustContain(t, body, `id="purge-event" href="confirm?action=purge&amp;id=dead-1&amp;source=%2Fusaepay"`)
	code, body, _ := f.get(t, "confirm", url.Values{"action": {"purge"}, "source": {"/usaepay"}, "id": {"dead-1"}})
	if code != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", code, body)
	}
	mustContain(t, body, "Purge this event?", "transaction.sale.success", "key-dead-1", "cannot be undone", "Delete this event now",
		`<input type="hidden" name="id" value="dead-1">`)
	if _, err := f.db.Get(context.Background(), "/usaepay", "dead-1"); err != nil {
		t.Fatal("the confirmation deleted the event")
	}
	if code, _, _ := f.post(t, "purge", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}, "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Errorf("cross-site purge of one event: %d", code)
	}
	code, body, _ = f.post(t, "purge", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}})
	if code != http.StatusOK {
		t.Fatalf("purge: %d\n%s", code, body)
	}
	mustContain(t, body, "Deleted 1 event<")
	if _, err := f.db.Get(context.Background(), "/usaepay", "dead-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("dead-1 is still stored: %v", err)
	}
	counts, _ := f.db.Counts(context.Background())
	if total := counts[store.StatusDead] + counts[store.StatusDelivered] + counts[store.StatusPending]; total != 4 {
		t.Errorf("%d events left, want the 4 others: %v", total, counts)
	}
	if code, _, _ := f.post(t, "purge", url.Values{"source": {"/usaepay"}, "id": {"dead-1"}}); code != http.StatusNotFound {
		t.Errorf("purge of a purged event: %d, want 404", code)
	}
}

// Switching zones keeps a filter's times: the switch's link carries them
// as RFC 3339 times, and the page switched to shows them in its zone.
func TestZoneSwitchKeepsTheFilterTimes(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	_, body, _ := f.get(t, "events", url.Values{"tz": {"Asia/Tokyo"}, "status": {"dead"}, "from": {"2026-11-20T19:01"}})
	mustContain(t, body, `id="zone-utc" href="events?from=2026-11-20T10%3A01%3A00Z&amp;status=dead&amp;tz=UTC"`)
	_, body, _ = f.get(t, "events", url.Values{"tz": {"UTC"}, "status": {"dead"}, "from": {"2026-11-20T10:01:00Z"}})
	mustContain(t, body, `name="from" id="from" type="datetime-local" step="1" value="2026-11-20T10:01:00"`, "id=dead-2")
	mustNotContain(t, body, "id=dead-1&")
}

// The destinations page shows each destination's state and counts and
// pauses and resumes it; its parked lanes page names each dead head, and
// skipping it from there lets the lane go on.
func TestDestinationsLanesAndSkip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i, id := range []string{"sale-1", "void-1"} {
		rec := &store.Record{Source: "/usaepay", ID: id, Provider: "usaepay", Type: "transaction.sale.success", Subject: "tx-1",
			ReceivedAt: base.Add(time.Duration(i) * time.Second), Event: []byte(`{}`),
			Deliveries: []store.Delivery{{Destination: "/usaepay", Lane: "tx-1"}}}
		if _, err := f.db.Insert(ctx, &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, true); err != nil {
			t.Fatal(err)
		}
	}
	f.claimOne(t, "/usaepay", "sale-1", "/usaepay")
	if err := f.db.RecordAttempt(ctx, "/usaepay", "sale-1", "/usaepay", "fixture", store.Attempt{Number: 1, At: base, Status: 500}, store.Dead(store.DeadAttemptsExhausted)); err != nil {
		t.Fatal(err)
	}
	f.insertTo(t, []string{"elsewhere"}, "/usaepay", "other", "ach.settled", "", store.StatusPending, base)

	code, body, _ := f.get(t, "destinations", nil)
	if code != http.StatusOK {
		t.Fatalf("%d\n%s", code, body)
	}
	mustContain(t, body, `<tr data-destination="/usaepay">`, `<span class="state-healthy">healthy</span>`,
		`<a href="lanes?destination=%2Fusaepay">1</a>`, `<tr data-destination="elsewhere">`, `<span class="state-not loaded">not loaded</span>`)

	code, _, h := f.post(t, "pause", url.Values{"destination": {"/usaepay"}, "paused": {"true"}})
	if code != http.StatusSeeOther || !f.engine.Held() {
		t.Fatalf("pause: %d, held %v", code, f.engine.Held())
	}
	_, body, _ = f.get(t, "destinations", nil)
	mustContain(t, body, `<span class="state-paused">paused</span> <span class="mark">by an operator</span>`, `class="resume"`)
	if loc := h.Get("Location"); !strings.HasPrefix(loc, "destinations?") {
		t.Errorf("pause went to %q", loc)
	}
	if code, _, _ := f.post(t, "pause", url.Values{"destination": {"/usaepay"}, "paused": {"false"}}); code != http.StatusSeeOther || f.engine.Held() {
		t.Fatalf("resume: %d, held %v", code, f.engine.Held())
	}
	if code, _, _ := f.post(t, "pause", url.Values{"destination": {"nowhere"}, "paused": {"true"}}); code != http.StatusNotFound {
		t.Errorf("pause of an unknown destination: %d", code)
	}

	_, body, _ = f.get(t, "lanes", url.Values{"destination": {"/usaepay"}})
	mustContain(t, body, `<tr data-lane="tx-1">`, `id=sale-1`, `<td class="num behind">1</td>`, `class="replay-head"`, `class="skip danger"`)

	_, body, _ = f.get(t, "event", url.Values{"source": {"/usaepay"}, "id": {"sale-1"}})
	mustContain(t, body, `<section class="delivery" id="delivery-/usaepay"`, `<code>tx-1</code>, sequence 1`, `parked: nothing behind it`)

	code, _, h = f.post(t, "skip", url.Values{"source": {"/usaepay"}, "id": {"sale-1"}, "destination": {"/usaepay"}, "back": {"lanes"}})
	if code != http.StatusSeeOther || h.Get("Location") != "lanes?destination=%2Fusaepay" {
		t.Fatalf("skip: %d to %q", code, h.Get("Location"))
	}
	if s := f.status(t, "/usaepay", "sale-1"); s != store.StatusDelivered {
		t.Errorf("the skipped event is %s; want delivered (its only delivery skipped)", s)
	}
	_, body, _ = f.get(t, "lanes", url.Values{"destination": {"/usaepay"}})
	mustContain(t, body, `id="no-lanes"`)
	if code, _, _ := f.post(t, "skip", url.Values{"source": {"/usaepay"}, "id": {"void-1"}, "destination": {"/usaepay"}}); code != http.StatusConflict {
		t.Errorf("skip of a pending delivery: %d, want 409", code)
	}
}
