package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// Secrets of the auth test routes.
const (
	loyaltyHostedSecret = "whsec_loyalty-hosted-signing-key"
	swSecret            = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	swSecretOld         = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

var authEnv = []string{
	"TEST_LOYALTY_HOSTED_SECRET=" + loyaltyHostedSecret,
	"TEST_SW_SECRET=" + swSecret,
	"TEST_SW_SECRET_OLD=" + swSecretOld,
}

// authSite has an explicitly open route, a route configured for the
// loyalty platform's hosted sender (timestamped HMAC over the request id,
// the timestamp and the body, written with Caddy's {header.*} shorthand)
// and a Standard Webhooks route, all sync in front of backend. The open
// route writes a source of its own: no credential vouches for its events.
func authSite(backend string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/open {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			source /open
			max_event_age off
			deliver sync
			auth none
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/loyalty-hosted {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth hmac {env.TEST_LOYALTY_HOSTED_SECRET} {
				header           X-Webhook-Signature
				timestamp_header X-Webhook-Timestamp
				signed_content   {header.X-Webhook-Request-Id}.{timestamp}.{body}
				algorithm_header X-Webhook-Signature-Algorithm
			}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/standard {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth standard_webhooks {env.TEST_SW_SECRET} {env.TEST_SW_SECRET_OLD}
		}
		reverse_proxy ` + backend + `
	}
}
`
}

// TestAuthRequiredAtLoad: a route without an auth line, or with auth none
// beside another scheme, does not start.
func TestAuthRequiredAtLoad(t *testing.T) {
	be := newBackend(t)
	cases := []struct{ name, opts, want string }{
		{"no auth line", "", `no auth configured: add an auth line`},
		{"none beside hmac", "auth none\n\t\tauth hmac {env.TEST_SIG_KEY}", "auth none cannot be combined"},
		{"bad signed content", "auth hmac {env.TEST_SIG_KEY} {\n\t\t\tsigned_content {timestamp}.{body}\n\t\t}", "no timestamp header"},
		{"unknown hmac option", "auth hmac {env.TEST_SIG_KEY} {\n\t\t\tclock_skew 1m\n\t\t}", "clock_skew"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := testcaddy.New(t, gatewayEnv...)
			err := gw.TryStart(paymentRoute(be, tc.opts))
			if err == nil {
				t.Fatal("caddy started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q: %v", tc.want, err)
			}
		})
	}
}

func TestAuthSchemesThroughCaddy(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, authEnv...)
	gw.Start(authSite(be.host()))

	t.Run("auth none accepts an unauthenticated request", func(t *testing.T) {
		id, body := paymentEvent(t)
		if code, answer := post(t, gw.BaseURL()+"/hooks/open", body, nil); code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("%d %v, want 200 delivered", code, answer)
		}
		if be.count(id) != 1 {
			t.Fatalf("backend got the event %d times", be.count(id))
		}
	})

	t.Run("timestamped hmac", func(t *testing.T) {
		loyaltyEvent := func() []byte {
			raw := make([]byte, 8)
			_, _ = rand.Read(raw)
			return fmt.Appendf(nil, `{"type":"customer.registered","data":{"customerId":"%s"}}`, hex.EncodeToString(raw))
		}
		headers := func(body []byte, signedAt time.Time, alg string) http.Header {
			const requestID = "5f0c8d9e-7b0a-4c55-9d0e-1e2f3a4b5c6d"
			ts := strconv.FormatInt(signedAt.Unix(), 10)
			h := http.Header{
				"X-Webhook-Timestamp":  {ts},
				"X-Webhook-Signature":  {sign(loyaltyHostedSecret, append([]byte(requestID+"."+ts+"."), body...))},
				"X-Webhook-Request-Id": {requestID},
			}
			if alg != "" {
				h.Set("X-Webhook-Signature-Algorithm", alg)
			}
			return h
		}
		url := gw.BaseURL() + "/hooks/loyalty-hosted"
		body := loyaltyEvent()
		if code, answer := post(t, url, body, headers(body, time.Now(), "HMAC-SHA256")); code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("fresh signed request: %d %v, want 200 delivered", code, answer)
		}
		now := time.Now()
		refused := []struct {
			name    string
			headers func(body []byte) http.Header
		}{
			{"ten minutes old", func(b []byte) http.Header { return headers(b, now.Add(-10*time.Minute), "") }},
			{"ten minutes ahead", func(b []byte) http.Header { return headers(b, now.Add(10*time.Minute), "") }},
			{"another hash named", func(b []byte) http.Header { return headers(b, now, "HMAC-SHA1") }},
			{"no timestamp", func(b []byte) http.Header {
				h := headers(b, now, "")
				h.Del("X-Webhook-Timestamp")
				return h
			}},
			{"no request id", func(b []byte) http.Header {
				h := headers(b, now, "")
				h.Del("X-Webhook-Request-Id")
				return h
			}},
			{"body signed alone", func(b []byte) http.Header {
				h := headers(b, now, "")
				h.Set("X-Webhook-Signature", sign(loyaltyHostedSecret, b))
				return h
			}},
		}
		for _, tc := range refused {
			body := loyaltyEvent()
			if code, answer := post(t, url, body, tc.headers(body)); code != http.StatusUnauthorized {
				t.Errorf("%s: %d %v, want 401", tc.name, code, answer)
			}
		}
	})

	t.Run("standard webhooks", func(t *testing.T) {
		url := gw.BaseURL() + "/hooks/standard"
		signed := func(secret, msgID string, at time.Time, body []byte) http.Header {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := wh.Sign(msgID, at, body)
			if err != nil {
				t.Fatal(err)
			}
			return http.Header{
				"Webhook-Id":        {msgID},
				"Webhook-Timestamp": {strconv.FormatInt(at.Unix(), 10)},
				"Webhook-Signature": {sig},
			}
		}
		id, body := paymentEvent(t)
		if code, answer := post(t, url, body, signed(swSecret, "msg_1", time.Now(), body)); code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("signed request: %d %v, want 200 delivered", code, answer)
		}
		oldID, oldBody := paymentEvent(t)
		if code, answer := post(t, url, oldBody, signed(swSecretOld, "msg_2", time.Now(), oldBody)); code != http.StatusOK {
			t.Fatalf("signed with the previous secret: %d %v, want 200", code, answer)
		}

		_, other := paymentEvent(t)
		tampered := append([]byte(nil), other...)
		tampered[len(tampered)-3] ^= 1 // a hex digit of event_id, still valid JSON
		if code, answer := post(t, url, tampered, signed(swSecret, "msg_3", time.Now(), other)); code != http.StatusUnauthorized {
			t.Fatalf("tampered body: %d %v, want 401", code, answer)
		}
		if code, answer := post(t, url, other, signed(swSecret, "msg_4", time.Now().Add(-time.Hour), other)); code != http.StatusUnauthorized {
			t.Fatalf("an hour old: %d %v, want 401", code, answer)
		}
		if code, answer := post(t, url, other, signed("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==", "msg_5", time.Now(), other)); code != http.StatusUnauthorized {
			t.Fatalf("unknown secret: %d %v, want 401", code, answer)
		}

		for _, r := range be.received() {
			if r.Header.Get("Webhook-Signature") != "" {
				t.Fatalf("backend received the sender's webhook-signature")
			}
		}
		// The signature is a secret header: not stored; the id is kept.
		gw.Stop()
		for _, eventID := range []string{id, oldID} {
			rec := storedRecord(t, gw, eventID)
			if rec.Headers.Get("Webhook-Signature") != "" || rec.Headers.Get("Webhook-Id") == "" {
				t.Fatalf("stored headers %v: want webhook-id kept and webhook-signature removed", rec.Headers)
			}
		}
	})
}
