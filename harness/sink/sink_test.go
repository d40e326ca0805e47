package sink

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("first-secret-0123456789abcdef"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("second-secret-0123456789abcdef"))
)

func schemaDoc(*testing.T) []byte { return schemas.CanonicalEventJSONSchema }

func event(mut func(m map[string]any)) []byte {
	m := map[string]any{
		"specversion":     "1.0",
		"id":              "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
		"source":          "/usaepay",
		"type":            "transaction.sale.success",
		"subject":         "1nftvzx7xtcggm3",
		"time":            "2021-04-07T15:14:26Z",
		"datacontenttype": "application/json",
		"data":            map[string]any{"object": map[string]any{"type": "transaction", "key": "1nftvzx7xtcggm3"}},
		"provider":        "usaepay",
		"receivedat":      "2026-11-22T10:00:00.123456Z",
	}
	if mut != nil {
		mut(m)
	}
	b, _ := json.Marshal(m)
	return b
}

type reqOpt func(r *http.Request, body []byte)

func signWith(secret string) reqOpt {
	return func(r *http.Request, body []byte) {
		wh, _ := standardwebhooks.NewWebhook(secret)
		id := "msg_" + strconv.Itoa(len(body))
		now := time.Now()
		sig, _ := wh.Sign(id, now, body)
		r.Header.Set("webhook-id", id)
		r.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		r.Header.Set("webhook-signature", sig)
	}
}

func header(k, v string) reqOpt {
	return func(r *http.Request, _ []byte) { r.Header.Set(k, v) }
}

func post(t *testing.T, h http.Handler, body []byte, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		if id, ok := m["id"].(string); ok {
			r.Header.Set("Idempotency-Key", id)
		}
	}
	for _, o := range opts {
		o(r, body)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAcceptsValidSignedEvent(t *testing.T) {
	s := newSink(t, Config{Secrets: []string{secretA, secretB}, Schema: schemaDoc(t)})
	body := event(nil)
	w := post(t, s, body, signWith(secretB), header("Webhook-Attempt", "3"), header("Webhook-Replay", "true"))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	ds := s.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries", len(ds))
	}
	d := ds[0]
	if d.Source != "/usaepay" || d.ID != "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd" ||
		d.Type != "transaction.sale.success" || d.Subject != "1nftvzx7xtcggm3" || d.Provider != "usaepay" ||
		d.Attempt != 3 || !d.Replay || !d.Signed || d.IdempotencyKey != d.ID || d.Seq != 1 ||
		!d.Time.Equal(time.Date(2021, 4, 7, 15, 14, 26, 0, time.UTC)) || d.Received.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
	if st := s.Stats(); st.Requests != 1 || st.Delivered != 1 || st.Invalid != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRejectsInvalid(t *testing.T) {
	s := newSink(t, Config{Secrets: []string{secretA}, Schema: schemaDoc(t)})
	cases := []struct {
		name   string
		body   []byte
		opts   []reqOpt
		status int
		reason string
	}{
		{"unsigned", event(nil), nil, 401, "signature"},
		{"wrong secret", event(nil), []reqOpt{signWith(secretB)}, 401, "signature"},
		{"tampered", event(nil), []reqOpt{signWith(secretA), func(r *http.Request, _ []byte) {
			r.Body = io.NopCloser(strings.NewReader(string(event(func(m map[string]any) { m["subject"] = "other" }))))
		}}, 401, "signature"},
		{"binary mode", event(nil), []reqOpt{signWith(secretA), header("Content-Type", "application/json")}, 400, "content type"},
		{"not json", []byte("{nope"), []reqOpt{signWith(secretA)}, 400, "cloudevents"},
		{"no id", event(func(m map[string]any) { delete(m, "id") }), []reqOpt{signWith(secretA)}, 400, "cloudevents"},
		{"zoned time", event(func(m map[string]any) { m["time"] = "2021-04-07T17:14:26+02:00" }), []reqOpt{signWith(secretA)}, 400, "schema"},
		{"malformed provider", event(func(m map[string]any) { m["provider"] = "Pay Pal" }), []reqOpt{signWith(secretA)}, 400, "schema"},
		{"no receivedat", event(func(m map[string]any) { delete(m, "receivedat") }), []reqOpt{signWith(secretA)}, 400, "schema"},
		{"idempotency mismatch", event(nil), []reqOpt{signWith(secretA), header("Idempotency-Key", "other")}, 400, "Idempotency-Key"},
	}
	for _, c := range cases {
		w := post(t, s, c.body, c.opts...)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.reason) {
			t.Errorf("%s: %d %s, want %d %q", c.name, w.Code, w.Body, c.status, c.reason)
		}
	}
	st := s.Stats()
	if st.Invalid != int64(len(cases)) || st.BadSignature != 3 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	if rj := s.Rejections(); len(rj) != len(cases) || rj[6].ID == "" {
		t.Fatalf("rejections %+v", rj)
	}
}

func TestUnsignedAcceptedWithoutSecret(t *testing.T) {
	s := newSink(t, Config{})
	body := event(nil)
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/cloudevents+json")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if st := s.Stats(); st.MissingIdempotencyKey != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
	if d := s.Deliveries()[0]; d.Signed || d.Attempt != 0 || d.Replay {
		t.Fatalf("delivery %+v", d)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Secrets: []string{"plain"}},
		{Secrets: []string{"whsec_!!!"}},
		{Schema: []byte("{")},
		{Faults: Faults{FailShare: 2}},
		{Faults: Faults{FailStatus: 404}},
		{Faults: Faults{RefuseMode: "drop"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestFailShareAndRetryAfter(t *testing.T) {
	s := newSink(t, Config{Seed: 9, Faults: Faults{FailShare: 1, FailStatus: 502, RetryAfter: 1500 * time.Millisecond}})
	w := post(t, s, event(nil))
	if w.Code != 502 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("%d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if err := s.SetFaults(Faults{FailShare: 0.4}); err != nil {
		t.Fatal(err)
	}
	fails := 0
	for range 500 {
		if w := post(t, s, event(nil)); w.Code == http.StatusServiceUnavailable {
			if w.Header().Get("Retry-After") != "" {
				t.Fatal("Retry-After without RetryAfter")
			}
			fails++
		}
	}
	if fails < 150 || fails > 250 {
		t.Fatalf("%d of 500 failed, want about 200", fails)
	}
	st := s.Stats()
	if st.Failed != int64(fails+1) || st.Delivered != int64(500-fails) || st.Invalid != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLatency(t *testing.T) {
	s := newSink(t, Config{Faults: Faults{Latency: 50 * time.Millisecond, LatencyJitter: 10 * time.Millisecond}})
	start := time.Now()
	if w := post(t, s, event(nil)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestRefusalWindow(t *testing.T) {
	s := newSink(t, Config{Faults: Faults{RefuseAfter: 0, RefuseFor: 150 * time.Millisecond, RetryAfter: time.Second}})
	w := post(t, s, event(nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("inside window: %d", w.Code)
	}
	refused := int64(1)
	testwait.For(t, "the refusal window to close", func() bool {
		if post(t, s, event(nil)).Code == 200 {
			return true
		}
		refused++
		return false
	})
	s.SetRefusing(true)
	if w := post(t, s, event(nil)); w.Code != 503 {
		t.Fatalf("manual refusal: %d", w.Code)
	}
	s.SetRefusing(false)
	if st := s.Stats(); st.Refused != refused+1 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerCloseModeAndSnapshot(t *testing.T) {
	s := newSink(t, Config{Faults: Faults{RefuseMode: RefuseClose}})
	srv, err := Listen("", s)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s", srv.URL)
	}
	send := func() (int, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/deliver", bytes.NewReader(event(nil)))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	s.SetRefusing(true)
	if _, err := send(); err == nil {
		t.Fatal("closed connection gave an answer")
	}
	s.SetRefusing(false)
	if code, err := send(); err != nil || code != 200 {
		t.Fatalf("%d %v", code, err)
	}
	ctx := context.Background()
	snap, err := Fetch(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Stats.Refused != 1 || len(snap.Deliveries) != 1 || snap.Deliveries[0].Source != "/usaepay" {
		t.Fatalf("snapshot %+v", snap)
	}
	resp, err := http.Post(srv.URL+ControlPrefix+"reset", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %v", err)
	}
	resp.Body.Close()
	if len(s.Deliveries()) != 0 {
		t.Fatal("reset kept deliveries")
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestValidateFuncTakesPrecedence(t *testing.T) {
	called := 0
	s := newSink(t, Config{Schema: []byte("{"), Validate: func([]byte) error { called++; return nil }})
	if w := post(t, s, event(nil)); w.Code != 200 || called != 1 {
		t.Fatalf("%d, validate called %d times", w.Code, called)
	}
}

// TestAcceptsNormalizedEvents feeds the sink what the gateway would deliver
// for simulated bodies of every type, validated with the schemas package's
// own validator.
func TestAcceptsNormalizedEvents(t *testing.T) {
	validate, err := schemas.NewJSONSchemaValidator(normalize.Providers()...)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Secrets: []string{secretA}, Validate: validate})
	g := sim.NewGenerator(sim.GenOptions{BatchShare: 1})
	want := 0
	for _, p := range sim.Providers() {
		for _, typ := range sim.EventTypes[p] {
			ev, err := g.Generate(p, typ)
			if err != nil {
				t.Fatal(err)
			}
			events, err := normalize.Normalize(ev.Body, normalize.Options{Provider: p, Location: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				body, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				if w := post(t, s, body, signWith(secretA)); w.Code != 200 {
					t.Fatalf("%s %s: %d %s\n%s", p, typ, w.Code, w.Body, body)
				}
				want++
			}
		}
	}
	if st := s.Stats(); st.Delivered != int64(want) || st.Invalid != 0 {
		t.Fatalf("stats %+v, want %d delivered", st, want)
	}
}
