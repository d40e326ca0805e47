package integration

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Secrets used by the test routes; the gateway reads them from the
// environment through {env.*} placeholders.
const (
	loyaltyHeader  = "X-Loyalty-Token"
	loyaltyToken   = "loyalty-token-new"
	loyaltyOld     = "loyalty-token-old"
	basicUser      = "usaepay"
	basicPass      = "basic:pass"
	sigKey         = "usaepay-signature-key"
	sigKeyOld      = "usaepay-signature-key-old"
	sublyticsToken = "s3cr3t-path-segment"
	// signingSecret signs the admin routes' deliveries.
	signingSecret = "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0zMmJ5dGVzLWxvbmc="
)

var gatewayEnv = []string{
	"TEST_LOYALTY_TOKEN=" + loyaltyToken,
	"TEST_LOYALTY_TOKEN_OLD=" + loyaltyOld,
	"TEST_BASIC_PASS=" + basicPass,
	"TEST_SIG_KEY=" + sigKey,
	"TEST_SIG_KEY_OLD=" + sigKeyOld,
	"TEST_SUBLYTICS_SECRET=" + sublyticsToken,
	"TEST_SIGNING_SECRET=" + signingSecret,
}

// syncSite is a site with one sync route per provider in front of backend.
// The test routes turn max_event_age off: the fixtures are the provider
// documents' examples, with their 2021 event times.
func syncSite(backend string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth header ` + loyaltyHeader + ` {env.TEST_LOYALTY_TOKEN} {env.TEST_LOYALTY_TOKEN_OLD}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			time_zone America/New_York
			auth path_secret {env.TEST_SUBLYTICS_SECRET}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY} {env.TEST_SIG_KEY_OLD}
		}
		reverse_proxy ` + backend + `
	}
}
`
}

// backend is the merchant's backend: it records every request and answers
// with a status the test controls.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	status   int
	delay    time.Duration
}

type received struct {
	Status int // what the backend answered
	Path   string
	Header http.Header
	Body   []byte
	Event  map[string]any
}

func newBackend(t *testing.T) *backend {
	b := newUnstartedBackend(t)
	b.Start()
	return b
}

// newUnstartedBackend is newBackend before it serves, for a test that
// replaces its handler or decides when it starts listening.
func newUnstartedBackend(t *testing.T) *backend {
	b := &backend{status: http.StatusOK}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		b.mu.Lock()
		status, delay := b.status, b.delay
		b.requests = append(b.requests, received{Status: status, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Event: ev})
		b.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(status)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) setStatus(code int) {
	b.mu.Lock()
	b.status = code
	b.mu.Unlock()
}

func (b *backend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.requests...)
}

// count returns how many requests carried the event id.
func (b *backend) count(id string) int {
	n := 0
	for _, r := range b.received() {
		if r.Event["id"] == id {
			n++
		}
	}
	return n
}

// deliveredOK reports whether the event with id was answered with a 2xx.
// allDeliveredOK reports whether every one of ids was answered 2xx.
func (b *backend) allDeliveredOK(ids []string) bool {
	for _, id := range ids {
		if !b.deliveredOK(id) {
			return false
		}
	}
	return true
}

func (b *backend) deliveredOK(id string) bool {
	for _, r := range b.received() {
		if r.Event["id"] == id && r.Status >= 200 && r.Status < 300 {
			return true
		}
	}
	return false
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func (b *backend) host() string { return strings.TrimPrefix(b.URL, "http://") }

// fixture reads a corrected provider example from the normalizer's test data.
func fixture(t *testing.T, provider, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "normalize", "testdata", provider, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fixtures lists a provider's fixture names.
func fixtures(t *testing.T, provider string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("..", "normalize", "testdata", provider, "*.json"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no fixtures for %s: %v", provider, err)
	}
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".json"))
	}
	sort.Strings(names)
	return names
}

func sign(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// post sends body to path with the given headers and returns status and body.
func post(t *testing.T, url string, body []byte, header http.Header) (int, map[string]any) {
	t.Helper()
	code, answer, err := send(url, body, header)
	if err != nil {
		t.Fatal(err)
	}
	return code, answer
}

// transportError is a request that got no HTTP answer at all.
type transportError struct{ error }

// send POSTs a provider body once and decodes the gateway's JSON answer.
func send(url string, body []byte, header http.Header) (int, map[string]any, error) {
	code, _, answer, err := sendWithHeader(url, body, header)
	return code, answer, err
}

// sendWithHeader is send also returning the answer's headers.
func sendWithHeader(url string, body []byte, header http.Header) (int, http.Header, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, transportError{err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var answer map[string]any
	if err := json.Unmarshal(raw, &answer); err != nil {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("answer is not JSON (status %d): %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// postRetrying is post for a sender that, like the payment gateway, sends
// the same body again when the connection fails before an answer arrives. A
// keep-alive connection that the server closes as a reload retires the old
// config's server can fail that way; an event without an answer was never
// acknowledged, and its resend must be accepted or found a duplicate.
func postRetrying(t *testing.T, url string, body []byte, header http.Header) (int, map[string]any, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		code, answer, err := send(url, body, header)
		var te transportError
		if !errors.As(err, &te) || attempt == 5 {
			return code, answer, err
		}
		t.Logf("resending after a transport error: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
}

func usaepayHeaders(body []byte) http.Header {
	h := http.Header{}
	h.Set("X-Signature", sign(sigKey, body))
	req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
	req.SetBasicAuth(basicUser, basicPass)
	h.Set("Authorization", req.Header.Get("Authorization"))
	return h
}

func loyaltyHeaders() http.Header {
	h := http.Header{}
	h.Set(loyaltyHeader, loyaltyToken)
	return h
}

// checkCloudEvent asserts a delivered body is a valid canonical event.
func checkCloudEvent(t *testing.T, r received) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != schemas.ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, schemas.ContentType)
	}
	validate, err := schemas.NewJSONSchemaValidator()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(r.Body); err != nil {
		t.Errorf("delivered event fails the JSON Schema: %v\n%s", err, r.Body)
	}
	var ev schemas.Event
	if err := json.Unmarshal(r.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(&ev); err != nil {
		t.Errorf("delivered event fails validation: %v", err)
	}
	if got := r.Header.Get("Idempotency-Key"); got != ev.ID {
		t.Errorf("Idempotency-Key = %q, want %q", got, ev.ID)
	}
	if strings.Contains(r.Path, sublyticsToken) {
		t.Errorf("the secret path segment reached the backend: %s", r.Path)
	}
	for _, h := range []string{"Authorization", "X-Signature", loyaltyHeader} {
		if r.Header.Get(h) != "" {
			t.Errorf("secret header %s reached the backend", h)
		}
	}
}

// waitStatus waits until the admin API shows the event source/id in status
// (delivered, dead, ...; the roll-up of its deliveries) and returns the
// attempts of its deliveries, in the order of its deliveries. Once an
// event is delivered or dead no worker sends it again, so a count taken
// after this is final without waiting for "nothing more" to happen.
func waitStatus(t *testing.T, gw *testcaddy.Instance, source, id, status string) []map[string]any {
	t.Helper()
	var attempts []map[string]any
	for _, d := range waitEvent(t, gw, source, id, status).Deliveries {
		attempts = append(attempts, d.Attempts...)
	}
	return attempts
}

// shownEvent is an event as the admin API shows it: its roll-up status
// and its deliveries.
type shownEvent struct {
	Status     string          `json:"status"`
	Deliveries []shownDelivery `json:"deliveries"`
}

// shownDelivery is one delivery of a shownEvent.
type shownDelivery struct {
	Destination string           `json:"destination"`
	Status      string           `json:"status"`
	Attempts    []map[string]any `json:"attempts"`
	Lane        string           `json:"lane"`
	Sequence    uint64           `json:"sequence"`
}

// delivery returns the event's delivery to dest, or nil.
func (e *shownEvent) delivery(dest string) *shownDelivery {
	for i := range e.Deliveries {
		if e.Deliveries[i].Destination == dest {
			return &e.Deliveries[i]
		}
	}
	return nil
}

// showEvent reads an event through the admin API.
func showEvent(t *testing.T, gw *testcaddy.Instance, source, id string) (*shownEvent, int) {
	t.Helper()
	var shown shownEvent
	code := adminGet(t, gw, "/webhooks/event?source="+url.QueryEscape(source)+"&id="+url.QueryEscape(id), &shown)
	return &shown, code
}

// waitEvent waits until the admin API shows the event in status (its
// roll-up) and returns it.
func waitEvent(t *testing.T, gw *testcaddy.Instance, source, id, status string) *shownEvent {
	t.Helper()
	var shown *shownEvent
	testwait.For(t, "event "+id+" "+status, func() bool {
		var code int
		shown, code = showEvent(t, gw, source, id)
		return code == http.StatusOK && shown.Status == status
	})
	return shown
}
