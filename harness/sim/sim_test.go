package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, body)
	}
	return m
}

func TestGenerateEveryType(t *testing.T) {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		loc = time.FixedZone("PST", -8*3600)
	}
	g := NewGenerator(GenOptions{Seed: 1, Location: loc, BatchShare: 0.5, CreatedAtShare: 0.5, ZeroDateShare: -1})
	seenIDs := map[string]bool{}
	for _, provider := range Providers() {
		for _, typ := range EventTypes[provider] {
			for range 6 {
				ev, err := g.Generate(provider, typ)
				if err != nil {
					t.Fatal(err)
				}
				m := decode(t, ev.Body)
				checkEnvelope(t, loc, ev, m)
				if ev.ProviderID != "" {
					if seenIDs[ev.ProviderID] {
						t.Fatalf("%s id %s generated twice", provider, ev.ProviderID)
					}
					seenIDs[ev.ProviderID] = true
				}
			}
		}
	}
	if _, err := g.Generate(USAePay, "customer.updated"); err == nil {
		t.Fatal("unknown type accepted")
	}
}

func checkEnvelope(t *testing.T, loc *time.Location, ev *Event, m map[string]any) {
	t.Helper()
	switch ev.Provider {
	case OpenLoyalty:
		if m["type"] != ev.Type || m["data"] == nil {
			t.Fatalf("loyalty envelope: %s", ev.Body)
		}
		if c, ok := m["createdAt"]; ok {
			if _, err := time.Parse(time.RFC3339, c.(string)); err != nil {
				t.Fatalf("createdAt: %v", err)
			}
		}
		items := []any{m["data"]}
		if arr, ok := m["data"].([]any); ok {
			if !BatchTypes[ev.Type] || len(arr) < 2 {
				t.Fatalf("unexpected array data for %s: %d items", ev.Type, len(arr))
			}
			items = arr
		}
		if ev.Items != len(items) {
			t.Fatalf("Items %d, body has %d", ev.Items, len(items))
		}
		seen := map[string]bool{}
		for _, it := range items {
			o, ok := it.(map[string]any)
			if !ok {
				t.Fatalf("data item is not an object: %s", ev.Body)
			}
			subject := o["customerId"]
			if subject == nil {
				subject = o["transactionId"]
			}
			if s, _ := subject.(string); len(s) != 36 {
				t.Fatalf("%s: no UUID subject in %s", ev.Type, ev.Body)
			}
			raw, _ := json.Marshal(o)
			if seen[string(raw)] {
				t.Fatalf("batch items not unique: %s", ev.Body)
			}
			seen[string(raw)] = true
		}
	case Sublytics:
		typ := sublyticsObject(ev.Type)
		if m["webhook_type"] != typ || m["webhook_event"] != ev.Type {
			t.Fatalf("sublytics envelope: %s", ev.Body)
		}
		switch id := m["webhook_event_id"].(type) {
		case string:
			if id != ev.ProviderID {
				t.Fatalf("id %q, want %q", id, ev.ProviderID)
			}
		case json.Number:
			if id.String() != ev.ProviderID {
				t.Fatalf("id %s, want %q", id, ev.ProviderID)
			}
		default:
			t.Fatalf("webhook_event_id of type %T", id)
		}
		when, err := time.ParseInLocation(providerTimeLayout, m["webhook_event_date"].(string), loc)
		if err != nil || time.Since(when) > 2*time.Minute || time.Since(when) < -time.Second {
			t.Fatalf("webhook_event_date %v: %v", m["webhook_event_date"], err)
		}
		obj := m["webhook_data"].(map[string]any)[typ].(map[string]any)
		if _, v2 := fulfillmentStatus[ev.Type]; v2 {
			// Webhooks v2 names the shipment by a numeric shipment_id.
			if n, ok := obj["shipment_id"].(json.Number); !ok || obj["id"] != nil {
				t.Fatalf("v2 shipment_id %v, id %v", n, obj["id"])
			}
		} else if _, err := strconv.Atoi(obj["id"].(string)); err != nil {
			t.Fatalf("object id: %v", obj["id"])
		}
	case USAePay:
		if m["type"] != "event" || m["event_type"] != ev.Type || !hex64.MatchString(m["event_id"].(string)) {
			t.Fatalf("usaepay envelope: %s", ev.Body)
		}
		when, err := time.ParseInLocation(providerTimeLayout, m["event_triggered"].(string), loc)
		if err != nil || time.Since(when) > 2*time.Minute || time.Since(when) < -time.Second {
			t.Fatalf("event_triggered %v: %v", m["event_triggered"], err)
		}
		object := m["event_body"].(map[string]any)["object"].(map[string]any)
		if k, _ := object["key"].(string); len(k) != 15 {
			t.Fatalf("object key %v", object["key"])
		}
	}
}

func TestSublyticsIDsIncrementAndVaryInForm(t *testing.T) {
	g := NewGenerator(GenOptions{SublyticsStartID: 4806})
	forms := map[string]bool{}
	for i := range 40 {
		ev, err := g.Generate(Sublytics, "order_updated")
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(4806 + i); ev.ProviderID != want {
			t.Fatalf("id %s, want %s", ev.ProviderID, want)
		}
		forms[fmt.Sprintf("%T", decode(t, ev.Body)["webhook_event_id"])] = true
	}
	if len(forms) != 2 {
		t.Fatalf("id forms %v, want both string and number", forms)
	}
}

// canonical decodes body and re-encodes it with sorted keys, reading a
// subscription id as a string, so two encodings of one event compare equal.
func canonical(t *testing.T, body []byte) string {
	m := decode(t, body)
	if n, ok := m["webhook_event_id"].(json.Number); ok {
		m["webhook_event_id"] = n.String()
	}
	out, _ := json.Marshal(m)
	return string(out)
}

func TestRedeliveryIsSameEventOtherBytes(t *testing.T) {
	g := NewGenerator(GenOptions{Seed: 3})
	differ := 0
	for _, provider := range Providers() {
		for _, typ := range EventTypes[provider] {
			ev, _ := g.Generate(provider, typ)
			re := g.Redelivery(ev)
			if re.ProviderID != ev.ProviderID || re.Type != ev.Type || re.Items != ev.Items {
				t.Fatalf("redelivery changed identity")
			}
			if canonical(t, re.Body) != canonical(t, ev.Body) {
				t.Fatalf("redelivery changed content:\n%s\n%s", ev.Body, re.Body)
			}
			if !bytes.Equal(re.Body, ev.Body) {
				differ++
			}
			if provider == Sublytics {
				a := fmt.Sprintf("%T", decode(t, ev.Body)["webhook_event_id"])
				b := fmt.Sprintf("%T", decode(t, re.Body)["webhook_event_id"])
				if a == b {
					t.Fatalf("redelivery kept the id form %s", a)
				}
			}
		}
	}
	if differ < 40 {
		t.Fatalf("only %d redeliveries differ in bytes", differ)
	}
}

// gatewayStub checks each provider's credentials the way the gateway must,
// and records what arrived.
type gatewayStub struct {
	t      *testing.T
	cfg    map[string]ProviderConfig
	mu     sync.Mutex
	bodies map[string][][]byte
	bad    atomic.Int64
	// status picks the answer; nil means 202.
	status                func(provider string, body []byte) int
	delay                 time.Duration
	inFlight, maxInFlight atomic.Int64
}

func (g *gatewayStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		m := g.maxInFlight.Load()
		if n <= m || g.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	provider := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[1]
	p := g.cfg[provider]
	ok := r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/json" && json.Valid(body)
	switch provider {
	case OpenLoyalty:
		ok = ok && r.Header.Get(p.HeaderName) == p.HeaderValue
	case USAePay:
		u, pw, basic := r.BasicAuth()
		sig, _ := hex.DecodeString(r.Header.Get("X-Signature"))
		want, _ := hex.DecodeString(Signature(p.SignatureKey, body))
		ok = ok && basic && u == p.BasicUser && pw == p.BasicPassword && hmac.Equal(sig, want) &&
			r.Header.Get("X-Signature") == strings.ToLower(r.Header.Get("X-Signature"))
	case Sublytics:
		ok = ok && strings.HasSuffix(r.URL.Path, "/"+p.SecretPath)
	}
	if !ok {
		g.bad.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	g.bodies[provider] = append(g.bodies[provider], body)
	g.mu.Unlock()
	if g.delay > 0 {
		time.Sleep(g.delay)
	}
	code := http.StatusAccepted
	if g.status != nil {
		code = g.status(provider, body)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `{"status":"accepted"}`)
}

func providerConfigs() map[string]ProviderConfig {
	return map[string]ProviderConfig{
		OpenLoyalty: {Path: "/hooks/openloyalty", HeaderName: "X-Loyalty-Token", HeaderValue: "s3cret-header"},
		USAePay:     {Path: "/hooks/usaepay", BasicUser: "merchant", BasicPassword: "pa:ss", SignatureKey: "sigkey"},
		Sublytics:   {Path: "/hooks/sublytics", SecretPath: "path-secret-123"},
	}
}

func newStub(t *testing.T) (*gatewayStub, *httptest.Server) {
	g := &gatewayStub{t: t, cfg: providerConfigs(), bodies: map[string][][]byte{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

func run(t *testing.T, cfg Config) *Simulator {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunAuthenticatesAndCoversEveryType(t *testing.T) {
	stub, srv := newStub(t)
	n := 3 * (len(EventTypes[OpenLoyalty]) + len(EventTypes[Sublytics]) + len(EventTypes[USAePay]))
	s := run(t, Config{
		BaseURL: srv.URL, Providers: stub.cfg, Count: n,
		BurstSize: 1000,
	})
	if stub.bad.Load() != 0 {
		t.Fatalf("%d requests failed authentication", stub.bad.Load())
	}
	sends := s.Sends()
	if len(sends) != n {
		t.Fatalf("%d sends, want %d", len(sends), n)
	}
	types := map[string]int{}
	for _, sd := range sends {
		if sd.Status != http.StatusAccepted || sd.Attempt != 1 || sd.Kind != Original || !sd.Acked() {
			t.Fatalf("send %+v", sd)
		}
		types[sd.Provider+" "+sd.Type]++
		if len(sd.Keys) != sd.Items || sd.KeyErr != "" || sd.Keys[0].Source != "/"+sd.Provider {
			t.Fatalf("keys %v (%s)", sd.Keys, sd.KeyErr)
		}
	}
	for _, p := range Providers() {
		for _, typ := range EventTypes[p] {
			if types[p+" "+typ] == 0 {
				t.Errorf("%s %s never sent", p, typ)
			}
		}
	}
}

func TestDuplicateAndRedeliveryShares(t *testing.T) {
	stub, srv := newStub(t)
	cfg := Config{
		BaseURL: srv.URL, Providers: stub.cfg, Count: 300, Concurrency: 16,
		DuplicateShare: 0.3, RedeliveryShare: 0.2, RedeliveryDelay: 20 * time.Millisecond,
		BurstSize: 1000,
	}
	s := run(t, cfg)
	kinds := map[Kind]int{}
	bodies := map[int64]map[Kind][]byte{}
	for _, sd := range s.Sends() {
		kinds[sd.Kind]++
		if bodies[sd.Event] == nil {
			bodies[sd.Event] = map[Kind][]byte{}
		}
		bodies[sd.Event][sd.Kind] = sd.Body
	}
	if kinds[Original] != 300 {
		t.Fatalf("originals %d", kinds[Original])
	}
	if d := kinds[Duplicate]; d < 60 || d > 120 {
		t.Fatalf("duplicates %d, want about 90", d)
	}
	if r := kinds[Redelivery]; r < 35 || r > 85 {
		t.Fatalf("redeliveries %d, want about 60", r)
	}
	for ev, b := range bodies {
		if d, ok := b[Duplicate]; ok && !bytes.Equal(d, b[Original]) {
			t.Fatalf("event %d: duplicate differs from original", ev)
		}
		if r, ok := b[Redelivery]; ok && canonical(t, r) != canonical(t, b[Original]) {
			t.Fatalf("event %d: redelivery is another event", ev)
		}
	}
}

func TestUSAePayRetriesUntilSuccessLoyaltyNever(t *testing.T) {
	stub, srv := newStub(t)
	var mu sync.Mutex
	seen := map[string]int{}
	stub.status = func(provider string, body []byte) int {
		mu.Lock()
		defer mu.Unlock()
		seen[string(body)]++
		switch n := seen[string(body)]; {
		case n == 1:
			return http.StatusServiceUnavailable
		case n == 2 && provider == USAePay:
			return http.StatusBadRequest
		}
		return http.StatusAccepted
	}
	cfg := Config{
		BaseURL: srv.URL, Count: 20, Concurrency: 4,
		Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay], OpenLoyalty: stub.cfg[OpenLoyalty]},
		// 5 minutes become 10ms.
		Retry: RetryPolicy{Attempts: 5, Scale: 30000},
	}
	s := run(t, cfg)
	byEvent := map[int64][]Send{}
	for _, sd := range s.Sends() {
		byEvent[sd.Event] = append(byEvent[sd.Event], sd)
	}
	if len(byEvent) != 20 {
		t.Fatalf("%d events", len(byEvent))
	}
	for ev, sends := range byEvent {
		switch sends[0].Provider {
		case OpenLoyalty:
			if len(sends) != 1 || sends[0].Status != http.StatusServiceUnavailable {
				t.Fatalf("loyalty event %d: %d attempts, status %d", ev, len(sends), sends[0].Status)
			}
		case USAePay:
			if len(sends) != 3 {
				t.Fatalf("usaepay event %d: %d attempts", ev, len(sends))
			}
			for i, sd := range sends {
				if sd.Attempt != i+1 {
					t.Fatalf("attempt %d recorded as %d", i+1, sd.Attempt)
				}
				if i > 0 && sd.Start.Sub(sends[i-1].Start) < 8*time.Millisecond {
					t.Fatalf("retry %d came after %v, want backoff", i+1, sd.Start.Sub(sends[i-1].Start))
				}
			}
			if !sends[2].Acked() || sends[1].Status != http.StatusBadRequest {
				t.Fatalf("statuses %d %d %d", sends[0].Status, sends[1].Status, sends[2].Status)
			}
		}
	}
}

func TestUSAePayGivesUpAfterAttempts(t *testing.T) {
	stub, srv := newStub(t)
	stub.status = func(string, []byte) int { return http.StatusInternalServerError }
	s := run(t, Config{
		BaseURL: srv.URL, Count: 3, Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay]},
		Retry: RetryPolicy{Attempts: 4, Scale: 300000},
	})
	if n := len(s.Sends()); n != 12 {
		t.Fatalf("%d attempts, want 3 events x 4", n)
	}
}

func TestLoyaltyTimeoutNotRetried(t *testing.T) {
	stub, srv := newStub(t)
	stub.delay = 300 * time.Millisecond
	s := run(t, Config{
		BaseURL: srv.URL, Count: 4, Providers: map[string]ProviderConfig{OpenLoyalty: stub.cfg[OpenLoyalty]},
		LoyaltyTimeout: 100 * time.Millisecond,
	})
	sends := s.Sends()
	if len(sends) != 4 {
		t.Fatalf("%d attempts, want 4", len(sends))
	}
	for _, sd := range sends {
		if sd.Status != 0 || !strings.HasPrefix(sd.Err, "timeout") || sd.Acked() {
			t.Fatalf("send %+v, want timeout", sd)
		}
	}
}

func TestUSAePayConnectionCap(t *testing.T) {
	stub, srv := newStub(t)
	stub.delay = 20 * time.Millisecond
	run(t, Config{
		BaseURL: srv.URL, Count: 120, Concurrency: 64,
		Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay]},
	})
	if m := stub.maxInFlight.Load(); m > 20 || m < 10 {
		t.Fatalf("max parallel requests %d, want up to 20", m)
	}
}

func TestSublyticsBursts(t *testing.T) {
	stub, srv := newStub(t)
	s := run(t, Config{
		BaseURL: srv.URL, Count: 9, Providers: map[string]ProviderConfig{Sublytics: stub.cfg[Sublytics]},
		BurstSize: 3, BurstPause: 150 * time.Millisecond,
	})
	sends := s.Sends()
	if len(sends) != 9 {
		t.Fatalf("%d sends", len(sends))
	}
	for i := 1; i < len(sends); i++ {
		gap := sends[i].Start.Sub(sends[i-1].Start)
		if i%3 == 0 && gap < 140*time.Millisecond {
			t.Fatalf("no pause before send %d (%v)", i, gap)
		}
		if i%3 != 0 && gap > 100*time.Millisecond {
			t.Fatalf("burst not back to back at send %d (%v)", i, gap)
		}
	}
}

func TestRateAndDuration(t *testing.T) {
	stub, srv := newStub(t)
	start := time.Now()
	s := run(t, Config{BaseURL: srv.URL, Count: 11, Rate: 50, Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay]}})
	if el := time.Since(start); el < 190*time.Millisecond {
		t.Fatalf("11 events at 50/s took %v", el)
	}
	if len(s.Sends()) != 11 {
		t.Fatal("count not honoured")
	}
	s = run(t, Config{BaseURL: srv.URL, Duration: 150 * time.Millisecond, Rate: 100, Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay]}})
	if n := len(s.Sends()); n < 8 || n > 17 {
		t.Fatalf("%d sends in 150ms at 100/s", n)
	}
}

func TestExpectFuncUsed(t *testing.T) {
	stub, srv := newStub(t)
	var calls atomic.Int64
	s := run(t, Config{
		BaseURL: srv.URL, Count: 6, Providers: stub.cfg, BurstSize: 100, RedeliveryShare: 1,
		RedeliveryDelay: time.Millisecond,
		Expect: func(provider, source string, body []byte) ([]Key, error) {
			calls.Add(1)
			if source != "/"+provider {
				return nil, fmt.Errorf("source %q", source)
			}
			return []Key{{Source: source, ID: fmt.Sprintf("%x", len(canonicalBytes(body)))}}, nil
		},
	})
	if calls.Load() != 12 {
		t.Fatalf("expect called %d times, want once per body (12)", calls.Load())
	}
	for _, sd := range s.Sends() {
		if len(sd.Keys) != 1 || sd.KeyErr != "" {
			t.Fatalf("send %+v", sd)
		}
	}
}

// canonicalBytes is a stand-in for the gateway's id derivation: any function
// of the decoded content.
func canonicalBytes(body []byte) []byte {
	var v any
	_ = json.Unmarshal(body, &v)
	out, _ := json.Marshal(v)
	return out
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{BaseURL: "http://127.0.0.1:1"},
		{BaseURL: "http://127.0.0.1:1", Providers: map[string]ProviderConfig{"paypal": {}}},
		{BaseURL: "http://127.0.0.1:1", Providers: map[string]ProviderConfig{USAePay: {Types: []string{"nope"}}}},
		{BaseURL: "http://127.0.0.1:1", Providers: map[string]ProviderConfig{USAePay: {}}, DuplicateShare: 2},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	s, err := New(Config{BaseURL: "http://h/", Providers: map[string]ProviderConfig{Sublytics: {SecretPath: "/abc/"}, USAePay: {Path: "x/y"}}})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.URL(Sublytics); u != "http://h/sublytics/abc" {
		t.Fatal(u)
	}
	if u := s.URL(USAePay); u != "http://h/x/y" {
		t.Fatal(u)
	}
	if !reflect.DeepEqual(s.Config().Retry, RetryPolicy{Scale: DefaultRetryScale}) {
		t.Fatal(s.Config().Retry)
	}
}

// TestBodiesNormalize checks generated bodies against the gateway's own
// normalizer: every body is accepted, ids are the provider's, loyalty
// events are expected by content key, the items of a loyalty batch have
// distinct keys, and a redelivery gives the same keys.
func TestBodiesNormalize(t *testing.T) {
	g := NewGenerator(GenOptions{BatchShare: 0.5, ZeroDateShare: 0.2})
	expect := NormalizeExpect(map[string]string{USAePay: "pay."})
	seen := map[Key]bool{}
	for _, provider := range Providers() {
		for _, typ := range EventTypes[provider] {
			for range 5 {
				ev, _ := g.Generate(provider, typ)
				events, err := normalize.Normalize(ev.Body, normalize.Options{Provider: provider})
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", provider, typ, err, ev.Body)
				}
				if len(events) != ev.Items {
					t.Fatalf("%d events, want %d", len(events), ev.Items)
				}
				for _, e := range events {
					if e.Type != typ || e.Subject == "" || e.Provider != provider {
						t.Fatalf("event %+v", e)
					}
					want := ev.ProviderID
					if provider == Sublytics {
						want = sublyticsObject(typ) + ":" + ev.ProviderID
					}
					if ev.ProviderID != "" && e.ID != want {
						t.Fatalf("id %s, want %s", e.ID, want)
					}
				}
				keys, err := expect(provider, "/src/"+provider, ev.Body)
				if err != nil {
					t.Fatal(err)
				}
				inBody := map[Key]bool{}
				for _, k := range keys {
					if k.Content != normalize.DerivesIDs(provider) || k.Source != "/src/"+provider {
						t.Fatalf("key %+v: wrong kind or source", k)
					}
					// Pooled loyalty content may repeat across bodies
					// (that is the point), never within one batch.
					if inBody[k] || (!k.Content && seen[k]) {
						t.Fatalf("key %v repeated", k)
					}
					inBody[k], seen[k] = true, true
				}
				again, err := expect(provider, "/src/"+provider, g.Redelivery(ev).Body)
				if err != nil || !reflect.DeepEqual(keys, again) {
					t.Fatalf("redelivery keys %v, want %v (%v)", again, keys, err)
				}
			}
		}
	}
}

// TestEveryProviderSimulated: the simulator plays every provider the
// gateway registers, each from its own file.
func TestEveryProviderSimulated(t *testing.T) {
	if got, want := Providers(), normalize.Providers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("simulated %v, registered %v", got, want)
	}
	if _, err := NewGenerator(GenOptions{}).Generate("stripe", "x"); err == nil || !strings.Contains(err.Error(), "not simulated") {
		t.Fatalf("unknown provider: %v", err)
	}
}

// TestRedeliveryOfBodyWithoutDocument re-encodes a body the generator did
// not build (a provider whose generator gives only bytes), keeping member
// order apart and numbers as written.
func TestRedeliveryOfBodyWithoutDocument(t *testing.T) {
	g := NewGenerator(GenOptions{Seed: 2})
	body := `{"a":{"x":[1,2.50,{"y":null}],"z":"s"},"b":true,"c":1e3,"d":[]}`
	e := &Event{Provider: "x", Type: "t", Body: []byte(body), Items: 1}
	differ := false
	for range 20 {
		re := g.Redelivery(e)
		var a, b any
		if err := json.Unmarshal(re.Body, &b); err != nil {
			t.Fatalf("%v: %s", err, re.Body)
		}
		_ = json.Unmarshal(e.Body, &a)
		if !reflect.DeepEqual(a, b) || !strings.Contains(string(re.Body), "2.50") || !strings.Contains(string(re.Body), "1e3") {
			t.Fatalf("redelivery changed content: %s", re.Body)
		}
		differ = differ || string(re.Body) != body
	}
	if !differ {
		t.Fatal("no redelivery differs in bytes")
	}
}
