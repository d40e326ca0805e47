package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// adminFixture is one store registered the way a provisioned Handler
// registers it, with an async route for /usaepay (backed by a loopback
// backend) and a sync route for /sublytics.
type adminFixture struct {
	dir     string
	db      *badger.Store
	backend *recordingBackend
}

type recordingBackend struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []http.Header
	bodies [][]byte
	status int
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{status: http.StatusOK}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.hits = append(b.hits, r.Header.Clone())
		b.bodies = append(b.bodies, body)
		status := b.status
		b.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) received() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]http.Header(nil), b.hits...)
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	dir := t.TempDir()
	db, err := badger.Open(dir, badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	be := newRecordingBackend(t)
	signer, err := delivery.NewSigner(adminSigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := delivery.New(delivery.Config{
		Store:       db,
		Destination: "/usaepay",
		Upstreams:   []string{be.URL + "/hooks"},
		Workers:     2,
		Timeout:     5 * time.Second,
		Observer:    processMetrics,
		Headers:     delivery.NewHeaderBuilder(signer),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.add(dir, db, []string{"/usaepay"}, handlers.Async, []*delivery.Engine{engine}))
	t.Cleanup(live.add(dir, db, []string{"/sublytics"}, handlers.Sync, nil))
	return &adminFixture{dir: dir, db: db, backend: be}
}

// adminSigningSecret signs the fixture's deliveries.
const adminSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// noFullSignature fails when out, a replay answer describing the request
// whose header is given, carries that request's full webhook-signature.
// The signature is recomputed from the header's webhook-timestamp and the
// stored event.
func (f *adminFixture) noFullSignature(t *testing.T, out []byte, header http.Header, source, id string) {
	t.Helper()
	rec, err := f.db.Get(context.Background(), source, id)
	if err != nil {
		t.Fatal(err)
	}
	unix, err := strconv.ParseInt(header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", header.Get("Webhook-Timestamp"), err)
	}
	signer, _ := delivery.NewSigner(adminSigningSecret)
	full, err := signer.Sign(id, time.Unix(unix, 0), rec.Event)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(strings.TrimPrefix(full, "v1,"))) {
		t.Fatalf("the answer carries the full signature %s:\n%s", full, out)
	}
	if shown := header.Get("Webhook-Signature"); !strings.HasPrefix(shown, "v1,") || !strings.HasSuffix(shown, "…") {
		t.Fatalf("webhook-signature shown as %q, want it masked", shown)
	}
}

// insert stores one event as the request path would.
func (f *adminFixture) insert(t *testing.T, source, id, provider, typ string, status store.Status, at time.Time) {
	t.Helper()
	ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": source, "type": typ})
	raw := fmt.Sprintf(`{"event_type":%q,"event_id":%q}`, typ, id)
	storeIn(t, f.db, &store.Record{
		Source: source, ID: id, Provider: provider, Type: typ, ReceivedAt: at,
		Event:   ev,
		Headers: http.Header{"User-Agent": {"provider/1.0"}},
	}, status, raw)
}

// call runs one admin handler the way Caddy's admin server does: an
// APIError becomes its status and a JSON {"error"} body.
func call(t *testing.T, method, target string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, target, rd)
	rec := httptest.NewRecorder()
	mux := http.NewServeMux()
	for _, route := range new(AdminAPI).Routes() {
		mux.Handle(route.Pattern, adminErrors(route.Handler))
	}
	mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// adminErrors renders handler errors like Caddy's admin server.
func adminErrors(h caddy.AdminHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h.ServeHTTP(w, r)
		if err == nil {
			return
		}
		apiErr, ok := err.(caddy.APIError)
		if !ok {
			apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(apiErr.HTTPStatus)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": apiErr.Error()})
	})
}

func decode[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

func wantStatus(t *testing.T, got int, body []byte, want int, contains string) {
	t.Helper()
	if got != want {
		t.Fatalf("status %d, want %d: %s", got, want, body)
	}
	if contains != "" && !strings.Contains(string(body), contains) {
		t.Fatalf("body %s does not mention %q", body, contains)
	}
}

var adminT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAdminNoStoreLoaded(t *testing.T) {
	code, body := call(t, http.MethodGet, "/webhooks/events", nil)
	wantStatus(t, code, body, http.StatusNotFound, "no webhook_gateway")
}

func TestAdminListFiltersAndPages(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "transaction.sale.success", store.StatusPending, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "ach.settled", store.StatusDead, adminT0.Add(time.Minute))
	f.insert(t, "/sublytics", "s1", "sublytics", "order_updated", store.StatusDelivered, adminT0.Add(2*time.Minute))

	code, body := call(t, http.MethodGet, "/webhooks/events", nil)
	wantStatus(t, code, body, http.StatusOK, "")
	all := decode[ops.ListResponse](t, body)
	if len(all.Events) != 3 || all.Events[0].ID != "s1" || all.Events[2].ID != "a1" || all.NextCursor != "" {
		t.Fatalf("listing, newest first: %+v", all)
	}
	if all.Store != f.dir {
		t.Errorf("store = %q, want %q", all.Store, f.dir)
	}

	for query, want := range map[string][]string{
		"status=dead":                   {"a2"},
		"provider=usaepay":              {"a2", "a1"},
		"source=/sublytics":             {"s1"},
		"type=transaction.sale.success": {"a1"},
		"from=" + url.QueryEscape(adminT0.Add(time.Minute).Format(time.RFC3339)):                                                             {"s1", "a2"},
		"to=" + url.QueryEscape(adminT0.Add(time.Minute).Format(time.RFC3339)):                                                               {"a1"},
		"from=" + url.QueryEscape(adminT0.Format(time.RFC3339)) + "&to=" + url.QueryEscape(adminT0.Add(90*time.Second).Format(time.RFC3339)): {"a2", "a1"},
	} {
		code, body := call(t, http.MethodGet, "/webhooks/events?"+query, nil)
		wantStatus(t, code, body, http.StatusOK, "")
		var got []string
		for _, e := range decode[ops.ListResponse](t, body).Events {
			got = append(got, e.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, want %v", query, got, want)
		}
	}

	// Paging: two, then the rest through the cursor.
	code, body = call(t, http.MethodGet, "/webhooks/events?limit=2", nil)
	wantStatus(t, code, body, http.StatusOK, "")
	page := decode[ops.ListResponse](t, body)
	if len(page.Events) != 2 || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	code, body = call(t, http.MethodGet, "/webhooks/events?limit=2&cursor="+url.QueryEscape(page.NextCursor), nil)
	wantStatus(t, code, body, http.StatusOK, "")
	page = decode[ops.ListResponse](t, body)
	if len(page.Events) != 1 || page.Events[0].ID != "a1" || page.NextCursor != "" {
		t.Fatalf("second page: %+v", page)
	}
}

func TestAdminListBadParameters(t *testing.T) {
	newAdminFixture(t)
	for query, mention := range map[string]string{
		"status=lost":        "status",
		"from=yesterday":     "RFC 3339",
		"to=2026-13-01":      "RFC 3339",
		"limit=0":            "limit",
		"limit=5000":         "limit",
		"limit=ten":          "limit",
		"cursor=%21%21%21":   "cursor",
		"cursor=AAAA":        "cursor",
		"store=/nonexistent": "unknown store",
		"from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z": "not before",
	} {
		code, body := call(t, http.MethodGet, "/webhooks/events?"+query, nil)
		wantStatus(t, code, body, http.StatusBadRequest, mention)
	}
	code, body := call(t, http.MethodPost, "/webhooks/events", nil)
	wantStatus(t, code, body, http.StatusMethodNotAllowed, "GET")
}

// shownEvent is the part of GET /webhooks/event the tests look at.
type shownEvent struct {
	Source  string              `json:"source"`
	ID      string              `json:"id"`
	Status  string              `json:"status"`
	Event   map[string]any      `json:"event"`
	Headers map[string][]string `json:"headers"`
	RawBody string              `json:"raw_body"`
}

func TestAdminShow(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "transaction.sale.success", store.StatusPending, adminT0)

	code, body := call(t, http.MethodGet, "/webhooks/event?source=/usaepay&id=a1", nil)
	wantStatus(t, code, body, http.StatusOK, "")
	view := decode[shownEvent](t, body)
	if view.Source != "/usaepay" || view.ID != "a1" || view.Status != "pending" ||
		view.Event["type"] != "transaction.sale.success" || view.Headers["User-Agent"][0] != "provider/1.0" ||
		!strings.Contains(view.RawBody, `"event_id":"a1"`) {
		t.Fatalf("show: %s", body)
	}

	code, body = call(t, http.MethodGet, "/webhooks/event?source=/usaepay&id=nope", nil)
	wantStatus(t, code, body, http.StatusNotFound, "no event /usaepay nope")
	code, body = call(t, http.MethodGet, "/webhooks/event?source=/usaepay", nil)
	wantStatus(t, code, body, http.StatusBadRequest, "id")
}

func TestAdminCounts(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "x", store.StatusPending, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "x", store.StatusDead, adminT0)
	f.insert(t, "/usaepay", "a3", "usaepay", "x", store.StatusDead, adminT0)
	code, body := call(t, http.MethodGet, "/webhooks/counts", nil)
	wantStatus(t, code, body, http.StatusOK, "")
	c := decode[ops.CountsResponse](t, body)
	if c.Counts[store.StatusPending] != 1 || c.Counts[store.StatusDead] != 2 || c.Total != 3 {
		t.Fatalf("counts: %+v", c)
	}
	if _, ok := c.Counts[store.StatusDelivered]; !ok {
		t.Errorf("zero statuses should be present: %+v", c.Counts)
	}
}

func TestAdminReplayByID(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "x", store.StatusDead, adminT0)

	// Dry run: nothing sent, the request that would be sent is shown.
	code, body := call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Source: "/usaepay", ID: "a1", DryRun: true})
	wantStatus(t, code, body, http.StatusOK, "")
	dryAll := decode[ops.BulkReplayResponse](t, body)
	if len(dryAll.Results) != 1 {
		t.Fatalf("dry run of one delivery: %s", body)
	}
	dry := dryAll.Results[0]
	if !dry.DryRun || dry.Header.Get("Webhook-Replay") != "true" || len(dry.Body) == 0 || dry.Attempt != nil {
		t.Fatalf("dry run: %s", body)
	}
	if n := len(f.backend.received()); n != 0 {
		t.Fatalf("dry run sent %d requests", n)
	}
	f.noFullSignature(t, body, dry.Header, "/usaepay", "a1")

	code, body = call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Source: "/usaepay", ID: "a1"})
	wantStatus(t, code, body, http.StatusOK, "")
	all := decode[ops.BulkReplayResponse](t, body)
	if len(all.Results) != 1 || all.Delivered != 1 {
		t.Fatalf("replay of one delivery: %s", body)
	}
	res := all.Results[0]
	if res.Attempt == nil || res.Attempt.Status != http.StatusOK || res.Status != store.StatusDelivered {
		t.Fatalf("replay: %s", body)
	}
	f.noFullSignature(t, body, res.Header, "/usaepay", "a1")
	hits := f.backend.received()
	if len(hits) != 1 || hits[0].Get("Webhook-Replay") != "true" {
		t.Fatalf("backend saw %v", hits)
	}
	rec, err := f.db.Get(context.Background(), "/usaepay", "a1")
	if err != nil || rec.Status != store.StatusDelivered || len(rec.Deliveries) != 1 || rec.Deliveries[0].Replays != 1 {
		t.Fatalf("after replay: %+v %v", rec, err)
	}
}

func TestAdminReplayErrors(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/sublytics", "s1", "sublytics", "order_updated", store.StatusDelivered, adminT0)
	f.insert(t, "/usaepay", "r1", "usaepay", "x", store.StatusReserved, adminT0)

	cases := []struct {
		name    string
		body    any
		status  int
		mention string
	}{
		{"unknown event", ReplayRequest{Source: "/usaepay", ID: "nope"}, http.StatusNotFound, "no event"},
		{"sync route", ReplayRequest{Source: "/sublytics", ID: "s1"}, http.StatusConflict, "async route with upstreams"},
		{"sync route by filter", ReplayRequest{Filter: &ops.FilterRequest{Source: "/sublytics"}}, http.StatusConflict, "async route"},
		{"reserved", ReplayRequest{Source: "/usaepay", ID: "r1"}, http.StatusConflict, "synchronously"},
		{"nothing", ReplayRequest{}, http.StatusBadRequest, "nothing to replay"},
		{"empty filter", ReplayRequest{Filter: &ops.FilterRequest{}}, http.StatusBadRequest, "empty filter"},
		{"id without source", ReplayRequest{ID: "a1"}, http.StatusBadRequest, "both source and id"},
		{"id and filter", ReplayRequest{Source: "/usaepay", ID: "a1", Filter: &ops.FilterRequest{Status: "dead"}}, http.StatusBadRequest, "not both"},
		{"typo", `{"source":"/usaepay","id":"a1","dryrun":true}`, http.StatusBadRequest, "dryrun"},
		{"not JSON", `source=/usaepay`, http.StatusBadRequest, "decoding"},
		{"empty body", ``, http.StatusBadRequest, "empty request body"},
		{"bad status", ReplayRequest{Filter: &ops.FilterRequest{Status: "gone"}}, http.StatusBadRequest, "status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := call(t, http.MethodPost, "/webhooks/replay", c.body)
			wantStatus(t, code, body, c.status, c.mention)
		})
	}
	code, body := call(t, http.MethodGet, "/webhooks/replay", nil)
	wantStatus(t, code, body, http.StatusMethodNotAllowed, "POST")
	if n := len(f.backend.received()); n != 0 {
		t.Fatalf("failed replays sent %d requests", n)
	}
}

func TestAdminReplayByFilter(t *testing.T) {
	f := newAdminFixture(t)
	for i := range 5 {
		f.insert(t, "/usaepay", fmt.Sprintf("d%d", i), "usaepay", "x", store.StatusDead, adminT0.Add(time.Duration(i)*time.Second))
	}
	f.insert(t, "/usaepay", "ok", "usaepay", "x", store.StatusDelivered, adminT0)
	f.insert(t, "/sublytics", "s-dead", "sublytics", "order_updated", store.StatusDead, adminT0)

	code, body := call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Filter: &ops.FilterRequest{Status: "dead"}, DryRun: true})
	wantStatus(t, code, body, http.StatusOK, "")
	dry := decode[ops.BulkReplayResponse](t, body)
	if dry.Matched != 6 || dry.Delivered != 5 || dry.Skipped != 1 || len(dry.Results) != 6 || len(f.backend.received()) != 0 {
		t.Fatalf("dry bulk: %s", body)
	}

	code, body = call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Filter: &ops.FilterRequest{Status: "dead", Source: "/usaepay", Limit: 3}})
	wantStatus(t, code, body, http.StatusOK, "")
	res := decode[ops.BulkReplayResponse](t, body)
	if res.Matched != 3 || res.Delivered != 3 || res.Failed != 0 || len(f.backend.received()) != 3 {
		t.Fatalf("bulk with limit: %s", body)
	}

	f.backend.mu.Lock()
	f.backend.status = http.StatusServiceUnavailable
	f.backend.mu.Unlock()
	code, body = call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Filter: &ops.FilterRequest{Status: "dead", Source: "/usaepay"}})
	wantStatus(t, code, body, http.StatusOK, "")
	res = decode[ops.BulkReplayResponse](t, body)
	if res.Matched != 2 || res.Failed != 2 || res.Delivered != 0 {
		t.Fatalf("bulk against a failing backend: %s", body)
	}
	for _, h := range f.backend.received() {
		if h.Get("Webhook-Replay") != "true" {
			t.Fatalf("replay without Webhook-Replay: %v", h)
		}
	}
}

func TestAdminPurge(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "x", store.StatusDead, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "x", store.StatusDead, adminT0)
	f.insert(t, "/usaepay", "a3", "usaepay", "x", store.StatusPending, adminT0)

	code, body := call(t, http.MethodPost, "/webhooks/purge", PurgeRequest{})
	wantStatus(t, code, body, http.StatusBadRequest, "empty filter")
	code, body = call(t, http.MethodPost, "/webhooks/purge", PurgeRequest{Filter: &ops.FilterRequest{}})
	wantStatus(t, code, body, http.StatusBadRequest, "empty filter")

	code, body = call(t, http.MethodPost, "/webhooks/purge", PurgeRequest{Filter: &ops.FilterRequest{Status: "dead"}})
	wantStatus(t, code, body, http.StatusOK, "")
	if p := decode[ops.PurgeResponse](t, body); p.Purged != 2 {
		t.Fatalf("purge dead: %s", body)
	}
	code, body = call(t, http.MethodPost, "/webhooks/purge", PurgeRequest{All: true})
	wantStatus(t, code, body, http.StatusOK, "")
	if p := decode[ops.PurgeResponse](t, body); p.Purged != 1 {
		t.Fatalf("purge all: %s", body)
	}
	if _, err := f.db.Get(context.Background(), "/usaepay", "a3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a3 still there: %v", err)
	}
}

func TestAdminSeveralStores(t *testing.T) {
	a := newAdminFixture(t)
	b := newAdminFixture(t)
	a.insert(t, "/usaepay", "in-a", "usaepay", "x", store.StatusPending, adminT0)
	b.insert(t, "/usaepay", "in-b", "usaepay", "x", store.StatusPending, adminT0)

	code, body := call(t, http.MethodGet, "/webhooks/events", nil)
	wantStatus(t, code, body, http.StatusBadRequest, "store=")
	if !strings.Contains(string(body), a.dir) || !strings.Contains(string(body), b.dir) {
		t.Fatalf("ambiguity error should list the stores: %s", body)
	}
	code, body = call(t, http.MethodGet, "/webhooks/events?store="+url.QueryEscape(b.dir), nil)
	wantStatus(t, code, body, http.StatusOK, "in-b")

	// Replay goes through the engine of the named store's route.
	code, body = call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Store: a.dir, Source: "/usaepay", ID: "in-a"})
	wantStatus(t, code, body, http.StatusOK, "")
	if len(a.backend.received()) != 1 || len(b.backend.received()) != 0 {
		t.Fatalf("replay went to the wrong backend")
	}
	code, body = call(t, http.MethodPost, "/webhooks/replay", ReplayRequest{Store: a.dir, Source: "/usaepay", ID: "in-b"})
	wantStatus(t, code, body, http.StatusNotFound, "")
}

func TestRegistryReferenceCounting(t *testing.T) {
	r := newRegistry()
	dir := t.TempDir()
	db, err := badger.Open(dir, badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	newEngine := func() *delivery.Engine {
		e, err := delivery.New(delivery.Config{Store: db, Destination: "/usaepay", Upstreams: []string{"http://127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	oldEngine, newEng := newEngine(), newEngine()

	// A reload: the new config registers before the old one cleans up.
	removeOld := r.add(dir, db, []string{"/usaepay"}, handlers.Async, []*delivery.Engine{oldEngine})
	removeNew := r.add(dir, db, []string{"/usaepay"}, handlers.Async, []*delivery.Engine{newEng})
	if e, err := r.engine(dir, "/usaepay"); err != nil || e != newEng {
		t.Fatalf("during the reload the newest engine replays: %v", err)
	}
	removeOld()
	removeOld() // idempotent: a second Cleanup must not drop the new config's hold
	if _, _, err := r.store(""); err != nil {
		t.Fatalf("store gone while the new config holds it: %v", err)
	}
	if e, _ := r.engine(dir, "/usaepay"); e != newEng {
		t.Fatal("lost the new engine")
	}
	removeNew()
	if _, _, err := r.store(""); !errors.Is(err, errNoStore) {
		t.Fatalf("store still registered: %v", err)
	}
	if _, err := r.engine(dir, "/usaepay"); !errors.Is(err, errSyncRoute) {
		t.Fatalf("engine still registered: %v", err)
	}
}
