package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// plusSecret is a path secret with a '+', which a query decoder reads as a
// space.
const plusSecret = "pl+s-s3cret"

// accessLogSite has a route per auth scheme, sync in front of backend,
// and two access logs: access.log with the filter the README shows (for
// this site's routes), and
// raw.log as Caddy writes it by default. log_append fields read the
// request after the gateway has answered, the way any later logger would.
func accessLogSite(backend string) string {
	return `http://127.0.0.1:{{PORT}} {
	log {
		output file {{DIR}}/access.log
		format filter {
			request>headers>X-Loyalty-Token delete
			request>headers>X-Signature delete
			request>headers>Webhook-Signature delete
			request>uri regexp "^/hooks/sublytics/.*" "/hooks/sublytics/REDACTED"
			request>uri regexp "^/hooks/plus/.*" "/hooks/plus/REDACTED"
		}
	}
	log raw {
		output file {{DIR}}/raw.log
		format json
	}
	log_append after_uri {http.request.uri}
	log_append after_token {http.request.header.` + loyaltyHeader + `}
	log_append after_authorization {http.request.header.Authorization}
	log_append after_signature {http.request.header.X-Signature}
	log_append after_sw_signature {http.request.header.Webhook-Signature}

	route /hooks/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth header ` + loyaltyHeader + ` {env.TEST_LOYALTY_TOKEN}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth path_secret {env.TEST_SUBLYTICS_SECRET}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/plus/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			max_event_age off
			source /plus
			deliver sync
			auth path_secret {env.TEST_PLUS_SECRET}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY}
		}
		reverse_proxy ` + backend + `
	}
	route /hooks/standard {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			source /standard
			deliver sync
			auth standard_webhooks {env.TEST_SW_SECRET}
		}
		reverse_proxy ` + backend + `
	}
}
`
}

// TestSecretsKeptOutOfTheAccessLog sends an accepted and a refused request
// on every scheme with Caddy's access log on. The gateway strips each
// credential from the request (log_append fields read after it show
// REDACTED or nothing); Caddy's own record of the request is a copy taken
// before any handler runs, which the README's log filter cleans. No
// credential appears in the filtered log, and every accepted event is
// delivered.
func TestSecretsKeptOutOfTheAccessLog(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, append(append(gatewayEnv, authEnv...), "TEST_PLUS_SECRET="+plusSecret)...)
	gw.Start(accessLogSite(be.host()))
	base := gw.BaseURL()

	// The values that must not reach the filtered log; each is what a
	// request below sends.
	secrets := map[string]string{
		"loyalty token":     loyaltyToken,
		"near-miss token":   loyaltyToken + "-typo",
		"path secret":       sublyticsToken,
		"path secret, '+'":  plusSecret,
		"path secret, %2B":  strings.ReplaceAll(plusSecret, "+", "%2B"),
		"basic password":    basicPass,
		"basic credentials": base64.StdEncoding.EncodeToString([]byte(basicUser + ":" + basicPass)),
	}
	var delivered []string
	requests := 0
	expect := func(what string, code, want int, answer map[string]any) {
		t.Helper()
		requests++
		if code != want {
			t.Fatalf("%s: %d %v, want %d", what, code, answer, want)
		}
	}

	// Header token: accepted, then a near miss refused.
	customer := freshCustomer(t)
	body := fmt.Appendf(nil, `{"type":"customer.registered","data":{"customerId":%q}}`, customer)
	code, answer := post(t, base+"/hooks/openloyalty", body, loyaltyHeaders())
	expect("header token", code, http.StatusOK, answer)
	code, answer = post(t, base+"/hooks/openloyalty", body, http.Header{loyaltyHeader: {loyaltyToken + "-typo"}})
	expect("near-miss token", code, http.StatusUnauthorized, answer)

	// Path secret in the path and in the query, with and without a '+'.
	for _, tc := range []struct{ path, fixture string }{
		{"/hooks/sublytics/" + sublyticsToken + "?token=" + sublyticsToken, "order_updated"},
		{"/hooks/sublytics/" + sublyticsToken + "/?back=%2Fhooks%2F" + sublyticsToken, "shipment_shipped"},
		{"/hooks/plus/" + plusSecret + "?token=" + plusSecret + "&keep=1", "order_updated"},
		{"/hooks/plus/" + plusSecret + "?token=" + strings.ReplaceAll(plusSecret, "+", "%2B"), "shipment_shipped"},
	} {
		code, answer = post(t, base+tc.path, fixture(t, "sublytics", tc.fixture), nil)
		expect(tc.path, code, http.StatusOK, answer)
	}
	code, answer = post(t, base+"/hooks/plus/not-the-secret?token="+plusSecret, fixture(t, "sublytics", "order_updated"), nil)
	expect("wrong path segment", code, http.StatusUnauthorized, answer)

	// Basic and X-Signature: accepted, then refused on the signature
	// (Basic passed, so the request is partly verified).
	id, payment := paymentEvent(t)
	h := usaepayHeaders(payment)
	secrets["X-Signature"] = h.Get("X-Signature")
	code, answer = post(t, base+"/hooks/usaepay", payment, h)
	expect("basic + hmac", code, http.StatusOK, answer)
	delivered = append(delivered, id)
	_, other := paymentEvent(t)
	h = usaepayHeaders(other)
	h.Set("X-Signature", sign(sigKey, payment)) // a real signature, of another body
	code, answer = post(t, base+"/hooks/usaepay", other, h)
	expect("signature of another body", code, http.StatusUnauthorized, answer)

	// Standard Webhooks.
	wh, err := standardwebhooks.NewWebhook(swSecret)
	if err != nil {
		t.Fatal(err)
	}
	id, payment = paymentEvent(t)
	now := time.Now()
	sig, err := wh.Sign("msg_log", now, payment)
	if err != nil {
		t.Fatal(err)
	}
	secrets["webhook-signature"] = sig
	code, answer = post(t, base+"/hooks/standard", payment, http.Header{
		"Webhook-Id":        {"msg_log"},
		"Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
		"Webhook-Signature": {sig},
	})
	expect("standard webhooks", code, http.StatusOK, answer)
	delivered = append(delivered, id)

	// A request no route takes never reaches the gateway: the filter alone
	// keeps its header out.
	resp, err := http.Post(base+"/elsewhere", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	requests++

	for _, id := range delivered {
		if !be.deliveredOK(id) {
			t.Errorf("event %s not delivered", id)
		}
	}
	if got := len(be.received()); got != 7 {
		t.Errorf("backend got %d requests, want the 7 accepted events", got)
	}
	for _, r := range be.received() {
		if strings.Contains(r.Path, sublyticsToken) || strings.Contains(r.Path, "pl+s") || strings.Contains(r.Path, "pl%2Bs") {
			t.Errorf("a path secret reached the backend: %s", r.Path)
		}
	}

	filtered := readAccessLog(t, filepath.Join(gw.Dir, "access.log"), requests)
	raw := readAccessLog(t, filepath.Join(gw.Dir, "raw.log"), requests)

	t.Run("filtered log holds no credential", func(t *testing.T) {
		text := strings.Join(filtered, "\n")
		for what, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("the access log holds the %s %q:\n%s", what, v, text)
			}
		}
	})

	t.Run("the gateway stripped the request it was handed", func(t *testing.T) {
		// The raw log's log_append fields: read after the gateway answered.
		uris := map[string]bool{}
		for _, line := range raw {
			var entry map[string]any
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Fatalf("log line is not JSON: %v\n%s", err, line)
			}
			for _, k := range []string{"after_token", "after_authorization", "after_signature", "after_sw_signature"} {
				if v, _ := entry[k].(string); v != "" {
					t.Errorf("%s = %q after the gateway", k, v)
				}
			}
			u, _ := entry["after_uri"].(string)
			uris[u] = true
		}
		for _, want := range []string{
			"/hooks/sublytics/REDACTED?token=REDACTED",
			"/hooks/sublytics/REDACTED/?back=REDACTED",
			"/hooks/plus/REDACTED?token=REDACTED&keep=1",
			"/hooks/plus/REDACTED?token=REDACTED",
			// Refused, but the secret it holds in its query is known.
			"/hooks/plus/not-the-secret?token=REDACTED",
		} {
			if !uris[want] {
				t.Errorf("no request read as %q after the gateway; got %v", want, uris)
			}
		}
	})

	t.Run("caddy records the request as received", func(t *testing.T) {
		// Why the README's filter is needed: a handler cannot change the
		// access log's copy of the request. Should Caddy ever log the
		// request as handled, this fails and the README must say so.
		text := strings.Join(raw, "\n")
		if !strings.Contains(text, `"`+loyaltyHeader+`":["`+loyaltyToken+`"]`) ||
			!strings.Contains(text, `"uri":"/hooks/sublytics/`+sublyticsToken) {
			t.Errorf("the unfiltered access log no longer shows the request as received:\n%s", text)
		}
	})
}

// readAccessLog waits until the access log file has n entries and returns
// its lines. Caddy writes an entry once the response is complete, which can
// be just after the client has read it.
func readAccessLog(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	testwait.For(t, fmt.Sprintf("%d entries in %s", n, filepath.Base(path)), func() bool {
		f, err := os.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		lines = lines[:0]
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"logger":"http.log.access`) {
				lines = append(lines, sc.Text())
			}
		}
		return len(lines) >= n
	})
	return lines
}
