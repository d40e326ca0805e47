package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// paymentEventOf is a payment gateway webhook of type typ about the
// transaction key (its subject), for amount, with a fresh event id.
func paymentEventOf(t *testing.T, typ, key, amount string) (id string, body []byte) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	id = hex.EncodeToString(raw)
	body = fmt.Appendf(nil, `{"type":"event","event_triggered":"2021-04-07 15:14:26","event_type":%q,"event_body":{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":%q,"amount_detail":{"amount":%q}}},"event_id":"%s"}`, typ, key, amount, id)
	return id, body
}

// replayOutcome is one replay's result in the admin API's answer.
type replayOutcome struct {
	Destination string `json:"destination"`
	Redirected  bool   `json:"redirected"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	Attempt     *struct {
		Status int `json:"status"`
	} `json:"attempt"`
}

// replayByID replays one event through the admin API with req (source,
// id, and maybe destination) and returns the status code and the result
// of its one replay, whether the answer is that result or a list of
// results holding it.
func replayByID(t *testing.T, gw *testcaddy.Instance, req map[string]any) (int, replayOutcome) {
	t.Helper()
	var answer struct {
		replayOutcome
		Results []replayOutcome `json:"results"`
	}
	code := adminPost(t, gw, "/webhooks/replay", req, &answer)
	if len(answer.Results) == 1 {
		return code, answer.Results[0]
	}
	return code, answer.replayOutcome
}

// okCount is how many times be answered 2xx to the event id.
func (b *backend) okCount(id string) int {
	n := 0
	for _, r := range b.received() {
		if r.Event["id"] == id && r.Status >= 200 && r.Status < 300 {
			n++
		}
	}
	return n
}

// fastDestination is a destination block delivering to upstream with
// short retries and a breaker that probes every few hundred
// milliseconds, plus extra settings.
func fastDestination(name, upstream, extra string) string {
	return `
			destination ` + name + ` {
				upstream ` + upstream + `
				workers 4
				timeout 5s
				retry {
					attempts 1000
					initial_delay 50ms
					max_delay 200ms
				}
				breaker {
					cooldown 100ms
					max_cooldown 300ms
				}
				` + extra + `
			}`
}

// asyncPaymentSite is an async payment route at /hooks/usaepay with the
// given destination blocks.
func asyncPaymentSite(destinations ...string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}` + strings.Join(destinations, "") + `
		}
	}
}
`
}

// TestFanOutOneDestinationDown: one payment event to two destinations, one
// of them down for a while. The other gets it at once; the first gets it
// once it is back; each exactly once. A replay to one destination does not
// touch the other.
func TestFanOutOneDestinationDown(t *testing.T) {
	ledger, crm := newBackend(t), newBackend(t)
	crm.setStatus(http.StatusServiceUnavailable)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(asyncPaymentSite(fastDestination("ledger", ledger.URL, ""), fastDestination("crm", crm.URL, "")))

	var ids []string
	for i := range 10 {
		id, body := paymentEventOf(t, "transaction.sale.success", fmt.Sprintf("tx-%d", i), "5.00")
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("post: %d %v", code, answer)
		}
		ids = append(ids, id)
	}
	// The ledger has every event while the CRM refuses them.
	testwait.For(t, "the ledger to have every event", func() bool { return ledger.allDeliveredOK(ids) })
	testwait.For(t, "the CRM to have been tried", func() bool { return len(crm.received()) > 0 })
	for _, id := range ids {
		ev, _ := showEvent(t, gw, "/usaepay", id)
		if d := ev.delivery("ledger"); d == nil || d.Status != "delivered" {
			t.Fatalf("event %s: the ledger's delivery is %+v while the CRM is down", id, d)
		}
		if d := ev.delivery("crm"); d == nil || d.Status == "delivered" || ev.Status == "delivered" {
			t.Fatalf("event %s: %s, the CRM's delivery %+v, while the CRM is down", id, ev.Status, d)
		}
	}

	crm.setStatus(http.StatusOK)
	for _, id := range ids {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}
	for _, id := range ids {
		if n := ledger.count(id); n != 1 {
			t.Errorf("the ledger got event %s %d times, want 1", id, n)
		}
		if n := crm.okCount(id); n != 1 {
			t.Errorf("the CRM accepted event %s %d times, want 1", id, n)
		}
	}

	// A replay to the CRM reaches the CRM only, and is recorded on its
	// delivery alone.
	if code, one := replayByID(t, gw, map[string]any{"source": "/usaepay", "id": ids[0], "destination": "crm"}); code != http.StatusOK ||
		one.Destination != "crm" || one.Redirected || one.Status != "delivered" {
		t.Fatalf("replay to the CRM: %d %+v", code, one)
	}
	if crm.okCount(ids[0]) != 2 || ledger.count(ids[0]) != 1 {
		t.Fatalf("after a replay to the CRM: CRM %d, ledger %d; want 2 and 1", crm.okCount(ids[0]), ledger.count(ids[0]))
	}
	ev, _ := showEvent(t, gw, "/usaepay", ids[0])
	if d := ev.delivery("ledger"); d == nil || len(d.Attempts) != 1 {
		t.Fatalf("the ledger's delivery after a replay to the CRM: %+v", d)
	}
	if d := ev.delivery("crm"); d == nil || d.Attempts[len(d.Attempts)-1]["replay"] != true {
		t.Fatalf("the CRM's delivery does not show the replay: %+v", d)
	}
}

// TestFiltersGlobAndCEL: a destination taking sales by type glob and one
// taking large amounts by a CEL expression; an event of neither is stored
// and visible as unmatched; a bad expression refuses the config, naming
// the route and the position.
func TestFiltersGlobAndCEL(t *testing.T) {
	sales, large := newBackend(t), newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(asyncPaymentSite(
		fastDestination("sales", sales.URL, "types transaction.sale.*"),
		fastDestination("large", large.URL, "filter double(event.data.object.amount_detail.amount) >= 100.0"),
	))
	postOne := func(typ, amount string) string {
		t.Helper()
		id, body := paymentEventOf(t, typ, "tx-"+typ+amount, amount)
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("post: %d %v", code, answer)
		}
		return id
	}
	smallSale := postOne("transaction.sale.success", "5.00")
	bigSale := postOne("transaction.sale.success", "500.00")
	bigACH := postOne("ach.settled", "250.00")
	smallACH := postOne("ach.settled", "5.00")

	for _, id := range []string{smallSale, bigSale, bigACH} {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}
	want := map[string][2]int{smallSale: {1, 0}, bigSale: {1, 1}, bigACH: {0, 1}, smallACH: {0, 0}}
	for id, w := range want {
		if sales.count(id) != w[0] || large.count(id) != w[1] {
			t.Errorf("event %s reached sales %d and large %d times, want %v", id, sales.count(id), large.count(id), w)
		}
	}
	ev, _ := showEvent(t, gw, "/usaepay", bigSale)
	if len(ev.Deliveries) != 2 || ev.Deliveries[0].Destination != "sales" || ev.Deliveries[1].Destination != "large" {
		t.Fatalf("the large sale's deliveries: %+v", ev.Deliveries)
	}
	unmatched := waitEvent(t, gw, "/usaepay", smallACH, "unmatched")
	if len(unmatched.Deliveries) != 0 {
		t.Fatalf("an unmatched event has deliveries: %+v", unmatched.Deliveries)
	}
	var list struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	if code := adminGet(t, gw, "/webhooks/events?status=unmatched", &list); code != http.StatusOK || len(list.Events) != 1 || list.Events[0].ID != smallACH {
		t.Fatalf("listing unmatched events: %d %+v", code, list)
	}

	// A bad expression does not load: the error names the route, the
	// destination and the position in the expression.
	bad := testcaddy.New(t, gatewayEnv...)
	err := bad.TryStart(asyncPaymentSite(fastDestination("large", large.URL, "filter event.data.amount >")))
	if err == nil {
		t.Fatal("a config with a filter that does not parse loaded")
	}
	// The error is logged as JSON, its quotes escaped.
	for _, w := range []string{"(source /usaepay)", `destination \"large\": filter: expression`, `event.data.amount >`, ": 1:20: Syntax error"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("load error does not say %q: %v", w, err)
		}
	}
}

// TestSyncRouteAsyncDestinations: a sync route (reverse_proxy answers the
// provider) with an async destination. A failed forward releases the event
// without the async destination getting it; the provider's retry is
// forwarded, and the async destination then gets it exactly once, however
// often the provider sends it again.
func TestSyncRouteAsyncDestinations(t *testing.T) {
	direct, audit := newBackend(t), newBackend(t)
	direct.setStatus(http.StatusBadGateway)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(`http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth hmac {env.TEST_SIG_KEY}` + fastDestination("audit", audit.URL, "") + `
		}
		reverse_proxy ` + direct.host() + `
	}
}
`)
	id, body := paymentEventOf(t, "transaction.sale.success", "tx-sync", "5.00")
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusBadGateway {
		t.Fatalf("a refused forward answered %d %v", code, answer)
	}
	ev := waitEvent(t, gw, "/usaepay", id, "released")
	if d := ev.delivery("audit"); d == nil || d.Status != "held" {
		t.Fatalf("the audit delivery of a released event: %+v", ev.Deliveries)
	}

	direct.setStatus(http.StatusOK)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusOK {
		t.Fatalf("the provider's retry answered %d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", id, "delivered")
	for range 3 {
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusOK || answer["status"] != "duplicate" {
			t.Fatalf("a later retry answered %d %v", code, answer)
		}
	}
	// A later event reaching the audit destination shows that its workers
	// have looked since the retries.
	later, laterBody := paymentEventOf(t, "transaction.sale.success", "tx-later", "5.00")
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", laterBody, signedHeader(laterBody)); code != http.StatusOK {
		t.Fatalf("later event: %d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", later, "delivered")
	if n := audit.count(id); n != 1 {
		t.Fatalf("the audit destination got the event %d times, want 1", n)
	}
	if n := direct.okCount(id); n != 1 {
		t.Fatalf("the backend behind reverse_proxy accepted the event %d times, want 1", n)
	}
}
