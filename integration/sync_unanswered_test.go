package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// unansweredSite has a sync payment route with nothing after
// webhook_gateway (a forgotten reverse_proxy) and one with reverse_proxy,
// on one store.
func unansweredSite(backend string) string {
	route := func(path, after string) string {
		return `
	route ` + path + ` {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
		}
		` + after + `
	}`
	}
	return `http://127.0.0.1:{{PORT}} {` +
		route("/hooks/forgotten", "") +
		route("/hooks/proxied", "reverse_proxy "+backend) + `
}
`
}

// TestSyncWithNothingAfterTheGatewayFails: a sync route (the default
// without upstream) whose webhook_gateway nothing follows answers 502 and
// keeps the event only as released, which the retry is not taken for a
// duplicate of; the same event through a route with reverse_proxy is
// delivered, with the failed attempts before its own.
func TestSyncWithNothingAfterTheGatewayFails(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(unansweredSite(be.host()))
	id, body := paymentEvent(t)

	for try := 1; try <= 2; try++ {
		code, answer := post(t, gw.BaseURL()+"/hooks/forgotten", body, signedHeader(body))
		if code != http.StatusBadGateway || answer["status"] != "failed" {
			t.Fatalf("try %d with nothing after webhook_gateway: %d %v, want 502 failed", try, code, answer)
		}
		attempts := waitStatus(t, gw, "/usaepay", id, "released")
		if len(attempts) != try || attempts[try-1]["error"] == nil {
			t.Fatalf("try %d: the released event's attempts: %v", try, attempts)
		}
	}
	if out := gw.Output(); strings.Count(out, "config error: nothing after webhook_gateway answered") != 2 ||
		!strings.Contains(out, `"source":"/usaepay"`) {
		t.Errorf("the config error is not logged once per request with the route's source:\n%s", out)
	}

	code, answer := post(t, gw.BaseURL()+"/hooks/proxied", body, signedHeader(body))
	if code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("with reverse_proxy: %d %v, want 200 delivered", code, answer)
	}
	if n := be.count(id); n != 1 {
		t.Fatalf("the backend got the event %d times, want once", n)
	}
	if attempts := waitStatus(t, gw, "/usaepay", id, "delivered"); len(attempts) != 3 || attempts[2]["status"] != float64(http.StatusOK) {
		t.Fatalf("the delivered event's attempts: %v, want the two failures then 200", attempts)
	}
}
