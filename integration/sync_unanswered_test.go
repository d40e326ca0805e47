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
// stores nothing, so the retry is not taken for a duplicate; the same
// event through a route with reverse_proxy is delivered.
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
		if code := adminGet(t, gw, "/webhooks/event?source=/usaepay&id="+id, nil); code != http.StatusNotFound {
			t.Fatalf("try %d: the admin API shows the event (%d), want 404: nothing stored", try, code)
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
}
