package normalize_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/caddymodule"
	"github.com/webhookgw/caddy-webhook-gateway/harness"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// The toy provider's simulator, written the way a harness/sim/gen_<name>.go
// file is: a generator and the provider's own command-line option.
var toySim sync.Once

func registerToySim() {
	toySim.Do(func() {
		sim.Register(sim.Provider{
			Name: normalize.Toy,
			Generate: func(g *sim.Generator, eventType string) *sim.Event {
				var b [8]byte
				_, _ = rand.Read(b[:])
				id := hex.EncodeToString(b[:])
				body, _ := json.Marshal(map[string]any{
					"toy_event": eventType,
					"toy_id":    id,
					"at":        g.Options().Now().UTC().Format(time.RFC3339),
					"payload":   map[string]any{"toy": "t-" + id, "colour": "red", "parts": []any{1, 2.5, "x"}},
				})
				return &sim.Event{Body: body, ProviderID: id}
			},
			Options: []sim.Option{{
				Name: "toy-token", Type: "string", Env: "WEBHOOK_TOY_TOKEN", Usage: "toy provider's X-Toy-Token header",
				Apply: func(_ *sim.Config, pc *sim.ProviderConfig, v string) error {
					if pc != nil {
						pc.HeaderName, pc.HeaderValue = "X-Toy-Token", v
					}
					return nil
				},
			}},
		})
	})
}

// TestToyProvider adds a fourth provider from two test files, its
// normalize file (toy_test.go) and its simulator (above), and shows that
// detection, normalization, the schemas, the Caddy configuration, the
// operator's filters and the simulator with its command line all take it
// with no other change.
func TestToyProvider(t *testing.T) {
	normalize.RegisterToy(t)
	registerToySim()

	if got := normalize.Providers(); !slices.Equal(got, []string{normalize.OpenLoyalty, normalize.Sublytics, normalize.Toy, normalize.USAePay}) {
		t.Fatalf("normalize.Providers() = %v", got)
	}
	if !slices.Contains(ops.Providers(), normalize.Toy) || !slices.Contains(sim.Providers(), normalize.Toy) {
		t.Fatalf("ops %v, sim %v", ops.Providers(), sim.Providers())
	}
	if err := normalize.CheckOptions(normalize.Options{Provider: "stripe"}); !errors.Is(err, normalize.ErrUnknownProvider) ||
		!strings.Contains(err.Error(), "openloyalty, sublytics, toy, usaepay or auto") {
		t.Errorf("unknown provider: %v", err)
	}

	// Detection and normalization.
	body := []byte(`{"toy_event":"toy.created","toy_id":"AB12","at":"2021-04-07T17:14:26+02:00","payload":{"toy":"t-1","n":1}}`)
	if p, err := normalize.Detect(body); p != normalize.Toy || err != nil {
		t.Fatalf("Detect = %q, %v", p, err)
	}
	events, err := normalize.Normalize(body, normalize.Options{Provider: normalize.Toy})
	if err != nil || len(events) != 1 {
		t.Fatalf("Normalize: %v, %v", events, err)
	}
	ev := events[0]
	if ev.ID != "ab12" || ev.Source != "/toy" || ev.Type != "toy.created" || ev.Subject != "t-1" || ev.Provider != normalize.Toy ||
		!ev.Time.Equal(time.Date(2021, 4, 7, 15, 14, 26, 0, time.UTC)) || string(ev.Data) != `{"toy":"t-1","n":1}` || normalize.DerivesIDs(normalize.Toy) {
		t.Fatalf("event %+v", ev)
	}
	validate, err := schemas.NewJSONSchemaValidator(normalize.Providers()...)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(ev)
	if err := schemas.Validate(&ev); err != nil {
		t.Errorf("schemas.Validate: %v", err)
	}
	if err := validate(doc); err != nil {
		t.Errorf("JSON Schema: %v", err)
	}
	_, err = normalize.Normalize([]byte(`{"toy_event":"toy.created","payload":{}}`), normalize.Options{Provider: normalize.Toy})
	var ierr *normalize.InputError
	if !errors.As(err, &ierr) || ierr.Field != "toy_id" {
		t.Errorf("missing toy_id: %v", err)
	}
	if _, err := normalize.Detect([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), "toy (toy_event, toy_id, payload and optionally at)") {
		t.Errorf("no envelope: %v", err)
	}

	// The Caddy configuration.
	var h caddymodule.Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway toy {\n auth none\n deliver sync\n}")); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil || h.Provider != normalize.Toy {
		t.Fatalf("provider toy: %q, %v", h.Provider, err)
	}
	h.Provider = "stripe"
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "openloyalty, sublytics, toy, usaepay or auto") {
		t.Fatalf("provider stripe: %v", err)
	}

	// The simulator: every type, redelivered, through a stub gateway that
	// normalizes what it gets.
	g := sim.NewGenerator(sim.GenOptions{Seed: 1})
	for _, typ := range sim.EventTypes[normalize.Toy] {
		e, err := g.Generate(normalize.Toy, typ)
		if err != nil || e.Provider != normalize.Toy || e.Type != typ || e.Items != 1 {
			t.Fatalf("Generate %s: %+v, %v", typ, e, err)
		}
		re := g.Redelivery(e)
		a, aerr := normalize.Normalize(e.Body, normalize.Options{})
		b, berr := normalize.Normalize(re.Body, normalize.Options{})
		if aerr != nil || berr != nil || a[0].ID != b[0].ID || a[0].Type != typ || string(re.Body) == string(e.Body) {
			t.Fatalf("redelivery of %s:\n%s\n%s\n%v %v", typ, e.Body, re.Body, aerr, berr)
		}
	}
	stub := &toyGateway{t: t, seen: map[string]bool{}}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	s, err := sim.New(sim.Config{
		BaseURL: srv.URL, Count: 8, DuplicateShare: 1, RedeliveryShare: 1, RedeliveryDelay: time.Millisecond,
		Providers: map[string]sim.ProviderConfig{normalize.Toy: {HeaderName: "X-Toy-Token", HeaderValue: "secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sends := s.Sends()
	if len(sends) != 24 || len(stub.seen) != 8 {
		t.Fatalf("%d sends, %d distinct events", len(sends), len(stub.seen))
	}
	for _, snd := range sends {
		if !snd.Acked() || snd.KeyErr != "" || len(snd.Keys) != 1 || snd.Keys[0].Source != "/toy" || !stub.seen[snd.Keys[0].ID] {
			t.Fatalf("send %+v", snd)
		}
	}

	// The emit command offers the toy's own option and simulates it by
	// default.
	ec := harness.EmitCommand()
	if f := ec.Flags().Lookup("toy-token"); f == nil || !strings.Contains(f.Usage, "WEBHOOK_TOY_TOKEN") {
		t.Fatalf("--toy-token: %+v", f)
	}
	if f := ec.Flags().Lookup("providers"); f == nil || !strings.Contains(f.DefValue, "toy") {
		t.Fatalf("--providers: %+v", f)
	}
}

// toyGateway normalizes each body it gets, checks the toy's token and
// answers like the gateway: 202 for a new event, 200 for a duplicate.
type toyGateway struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[string]bool
}

func (g *toyGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path != "/toy" || r.Header.Get("X-Toy-Token") != "secret" {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	events, err := normalize.Normalize(body, normalize.Options{})
	if err != nil {
		g.t.Errorf("gateway: %v\n%s", err, body)
		http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	dup := g.seen[events[0].ID]
	g.seen[events[0].ID] = true
	g.mu.Unlock()
	if dup {
		_, _ = io.WriteString(w, `{"status":"duplicate"}`)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
