package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

// autoSite is syncSite with the loyalty route left to detect its provider
// (no provider line): the weakest credential of the site, a static header
// token, on a route that accepts every envelope.
func autoSite(backend string) string {
	site := syncSite(backend)
	auto := strings.Replace(site, "webhook_gateway openloyalty {", "webhook_gateway {", 1)
	if auto == site {
		panic("autoSite: the loyalty route is gone from syncSite")
	}
	return auto
}

// delivered lists the events the backend accepted with the given source
// and id.
func (b *backend) delivered(source, id string) []received {
	var out []received
	for _, r := range b.received() {
		if r.Event["source"] == source && r.Event["id"] == id && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// TestAutoRouteVouchesForItsOwnSourceOnly: a payment "sale success" and a
// subscription order forged through the auto route, with the loyalty
// platform's token, land in the auto route's own source; the genuine events,
// sent afterwards on their own routes with their own credentials, are
// delivered under their providers' sources, not answered "duplicate".
func TestAutoRouteVouchesForItsOwnSourceOnly(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(autoSite(be.host()))
	auto := gw.BaseURL() + "/hooks/openloyalty"

	payID, payment := paymentEvent(t)
	n, err := rand.Int(rand.Reader, big.NewInt(1<<40))
	if err != nil {
		t.Fatal(err)
	}
	counter := n.String() // the subscription platform's ids are counters: easy to guess
	order := []byte(`{"webhook_type":"order","webhook_event":"order_updated","webhook_event_id":"` + counter +
		`","webhook_event_date":"2021-03-19 18:38:40","webhook_data":{"order":{"id":"223827"}}}`)
	orderID := "order:" + counter

	forged := []struct {
		name, provider, id string
		body               []byte
	}{
		{"payment sale", "usaepay", payID, payment},
		{"subscription order", "sublytics", orderID, order},
	}
	for _, f := range forged {
		code, answer := post(t, auto, f.body, loyaltyHeaders())
		if code != http.StatusOK || answer["status"] != "delivered" || answer["id"] != f.id {
			t.Fatalf("forged %s through the auto route: %d %v", f.name, code, answer)
		}
		got := be.delivered("/auto", f.id)
		if len(got) != 1 || got[0].Event["provider"] != f.provider {
			t.Fatalf("forged %s: want one delivery with source /auto and provider %s, got %v", f.name, f.provider, got)
		}
		checkCloudEvent(t, got[0])
	}

	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", payment, usaepayHeaders(payment))
	if code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("genuine payment event on its own route: %d %v, want 200 delivered", code, answer)
	}
	code, answer = post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, order, nil)
	if code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("genuine subscription event on its own route: %d %v, want 200 delivered", code, answer)
	}
	for source, id := range map[string]string{"/usaepay": payID, "/sublytics": orderID} {
		if got := be.delivered(source, id); len(got) != 1 {
			t.Errorf("%s %s delivered %d times, want once", source, id, len(got))
		}
	}
}

// TestSourceSharedByDifferentAuthRefusedAtLoad: routes writing one source
// with different auth do not load unless both say share_source; the same
// route under two host names does; and a reload that changes a route's
// credential is not mistaken for a second route, although both configs are
// loaded for a moment.
func TestSourceSharedByDifferentAuthRefusedAtLoad(t *testing.T) {
	be := newBackend(t)
	site := func(share string) string {
		return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			deliver sync
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY}
			` + share + `
		}
		reverse_proxy ` + be.host() + `
	}
	route /hooks/other {
		webhook_gateway {
			store_dir {{DIR}}/store
			source /usaepay
			deliver sync
			auth header ` + loyaltyHeader + ` {env.TEST_LOYALTY_TOKEN}
			` + share + `
		}
		reverse_proxy ` + be.host() + `
	}
}
`
	}
	err := testcaddy.New(t, gatewayEnv...).TryStart(site(""))
	if err == nil {
		t.Fatal("two routes with different auth writing /usaepay loaded")
	}
	// Caddy's log line quotes the error as a JSON string.
	for _, want := range []string{`source \"/usaepay\": written by two routes with different auth`, "provider usaepay, auth basic + hmac", "provider auto, auth header", "set share_source on both"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("load error does not say %q: %v", want, err)
		}
	}
	for _, secret := range []string{basicPass, sigKey, loyaltyToken} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("load error shows a secret: %v", err)
		}
	}

	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(site("share_source"))
	id, body := freshPaymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/other", body, loyaltyHeaders()); code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("shared source: %d %v", code, answer)
	}
	if len(be.delivered("/usaepay", id)) != 1 {
		t.Fatal("the event of the route sharing /usaepay was not delivered under it")
	}

	// One route under two host names: the same auth, one source.
	payment := func(key string) string {
		return `
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			deliver sync
			auth hmac {env.` + key + `}
		}
		reverse_proxy ` + be.host() + `
	}
`
	}
	twoHosts := func(key string) string {
		return "http://127.0.0.1:{{PORT}} {" + payment(key) + "}\nhttp://localhost:{{PORT}} {" + payment(key) + "}\n"
	}
	gw = testcaddy.New(t, gatewayEnv...)
	gw.Start(twoHosts("TEST_SIG_KEY"))
	if err := gw.Reload(twoHosts("TEST_SIG_KEY_OLD")); err != nil {
		t.Fatalf("a reload that changes the key: %v", err)
	}
	id, body = freshPaymentEvent(t)
	h := http.Header{"X-Signature": {sign(sigKeyOld, body)}}
	testwait.For(t, "the reloaded key", func() bool {
		code, _, err := send(gw.BaseURL()+"/hooks/usaepay", body, h)
		return err == nil && code == http.StatusOK
	})
	if len(be.delivered("/usaepay", id)) != 1 {
		t.Fatal("the event signed with the new key was not delivered once")
	}
}

// hostedSite takes the loyalty platform's hosted sender on two sync routes
// with a timestamped HMAC (5 minutes of tolerance) and id_header: one signs
// the timestamp and the body only (the request id can be rewritten), the
// other the request id too.
func hostedSite(backend string) string {
	route := func(path, source, signed string) string {
		return `
	route ` + path + ` {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			source ` + source + `
			deliver sync
			id_header X-Webhook-Request-Id
			auth hmac {env.TEST_LOYALTY_HOSTED_SECRET} {
				header           X-Webhook-Signature
				timestamp_header X-Webhook-Timestamp
				signed_content   ` + signed + `
			}
		}
		reverse_proxy ` + backend + `
	}`
	}
	return "http://127.0.0.1:{{PORT}} {" +
		route("/hooks/loyalty-hosted", "/loyalty-hosted", "{timestamp}.{body}") +
		route("/hooks/loyalty-signed-id", "/loyalty-signed-id", "{header.X-Webhook-Request-Id}.{timestamp}.{body}") +
		"\n}\n"
}

// hostedRequest signs body as the hosted loyalty sender does, over the
// given template's parts, and returns its headers.
func hostedRequest(body []byte, requestID string, signedAt time.Time, signID bool) http.Header {
	ts := strconv.FormatInt(signedAt.Unix(), 10)
	content := ts + "." + string(body)
	if signID {
		content = requestID + "." + content
	}
	return http.Header{
		"X-Webhook-Timestamp":  {ts},
		"X-Webhook-Request-Id": {requestID},
		"X-Webhook-Signature":  {sign(loyaltyHostedSecret, []byte(content))},
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestCapturedSignedRequestWithNewRequestID: within the timestamp
// tolerance, a captured request re-sent with another X-Webhook-Request-Id
// is a duplicate and delivered once, however long the default dedup window
// is; where the signature covers the request id, the rewritten request is
// refused, and two genuine requests with the same content and distinct
// ids are two events. A dedup_window shorter than the tolerance does not
// load.
func TestCapturedSignedRequestWithNewRequestID(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, append(authEnv, gatewayEnv...)...)
	gw.Start(hostedSite(be.host()))
	countSubject := func(source, subject string) int {
		n := 0
		for _, r := range be.received() {
			if r.Event["source"] == source && r.Event["subject"] == subject && r.Status < 300 {
				n++
			}
		}
		return n
	}

	// The request id is not signed: rewriting it makes no new event.
	customer := randomHex(t, 8)
	body := fmt.Appendf(nil, `{"type":"CustomerUpdated","data":{"customerId":"%s"}}`, customer)
	url := gw.BaseURL() + "/hooks/loyalty-hosted"
	captured := hostedRequest(body, "0b1c8a1e-0000-4000-8000-000000000001", time.Now(), false)
	code, first := post(t, url, body, captured)
	if code != http.StatusOK || first["status"] != "delivered" || first["id"] != "0b1c8a1e-0000-4000-8000-000000000001" {
		t.Fatalf("signed request: %d %v", code, first)
	}
	replayed := captured.Clone()
	replayed.Set("X-Webhook-Request-Id", "0b1c8a1e-0000-4000-8000-0000000000ff")
	code, again := post(t, url, body, replayed)
	if code != http.StatusOK || again["status"] != "duplicate" || again["id"] != first["id"] {
		t.Fatalf("captured request with a new request id: %d %v, want a duplicate of %v", code, again, first["id"])
	}
	if n := countSubject("/loyalty-hosted", customer); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}

	// The request id is signed: a rewritten one fails verification, and
	// the same content under another signed id is a real second event.
	customer = randomHex(t, 8)
	body = fmt.Appendf(nil, `{"type":"CustomerUpdated","data":{"customerId":"%s"}}`, customer)
	url = gw.BaseURL() + "/hooks/loyalty-signed-id"
	captured = hostedRequest(body, "req-a", time.Now(), true)
	if code, answer := post(t, url, body, captured); code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("signed id: %d %v", code, answer)
	}
	replayed = captured.Clone()
	replayed.Set("X-Webhook-Request-Id", "req-b")
	if code, answer := post(t, url, body, replayed); code != http.StatusUnauthorized {
		t.Fatalf("rewritten signed id: %d %v, want 401", code, answer)
	}
	if code, answer := post(t, url, body, hostedRequest(body, "req-b", time.Now(), true)); code != http.StatusOK || answer["status"] != "delivered" || answer["id"] != "req-b" {
		t.Fatalf("another signed id, same content: %d %v, want a new event", code, answer)
	}
	if n := countSubject("/loyalty-signed-id", customer); n != 2 {
		t.Fatalf("delivered %d times, want twice", n)
	}

	// The content key of the unsigned-id route is held for the tolerance,
	// not the 30 s default window.
	gw.Stop()
	db, err := badger.Open(filepath.Join(gw.Dir, "store"), badger.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := db.Get(context.Background(), "/loyalty-hosted", first["id"].(string))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rec.DedupKey == "" || rec.DedupWindow != 5*time.Minute {
		t.Fatalf("stored dedup key %q for %s, want a content key for the 5m tolerance", rec.DedupKey, rec.DedupWindow)
	}

	short := strings.Replace(hostedSite(be.host()), "id_header X-Webhook-Request-Id", "id_header X-Webhook-Request-Id\n\t\t\tdedup_window 30s", 1)
	err = testcaddy.New(t, append(authEnv, gatewayEnv...)...).TryStart(short)
	if err == nil || !strings.Contains(err.Error(), "dedup_window 30s: shorter than the timestamp tolerance of the route's auth (5m0s)") {
		t.Fatalf("a dedup window shorter than the tolerance: %v", err)
	}
}
