package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

// Everything about one order, whichever provider told of it: the admin API
// and the CLI list by subject over events of two providers, and a purge by
// subject deletes that order's events alone.
func TestSubjectAcrossProviders(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(adminSite(be, 4))

	// The subscription platform's order 223827 (its subject is
	// webhook_data.order.id), delivered in sync mode.
	const order = "223827"
	code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, fixture(t, "sublytics", "order_updated"), nil)
	if code != http.StatusOK {
		t.Fatalf("sync event: %d %v", code, answer)
	}
	subID, _ := answer["id"].(string)
	// Two payments: one for the same order (usaepay's subject is
	// event_body.object.key), one for another.
	payment := func(key string) string {
		id, body := paymentEvent(t)
		body = []byte(strings.Replace(string(body), `"key":"k`+id[:10]+`"`, `"key":"`+key+`"`, 1))
		if !strings.Contains(string(body), `"key":"`+key+`"`) {
			t.Fatalf("payment body without its key: %s", body)
		}
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("async event: %d %v", code, answer)
		}
		waitStatus(t, gw, "/usaepay", id, "delivered")
		return id
	}
	same, other := payment(order), payment("ord-other")

	list := func(q url.Values) ([]string, int) {
		t.Helper()
		var out ops.ListResponse
		code := adminGet(t, gw, "/webhooks/events?"+q.Encode(), &out)
		var keys []string
		for _, e := range out.Events {
			keys = append(keys, e.Source+" "+e.ID+" "+e.Subject)
		}
		return keys, code
	}
	keys, code := list(url.Values{"subject": {order}})
	want := []string{"/usaepay " + same + " " + order, "/sublytics " + subID + " " + order}
	if code != http.StatusOK || !slices.Equal(keys, want) {
		t.Fatalf("list by subject: %d %v, want %v", code, keys, want)
	}
	if keys, _ := list(url.Values{"subject": {order}, "source": {"/sublytics"}}); len(keys) != 1 || !strings.HasPrefix(keys[0], "/sublytics ") {
		t.Fatalf("list by subject and source: %v", keys)
	}
	if keys, _ := list(url.Values{"subject": {"ord-other"}}); len(keys) != 1 || !strings.Contains(keys[0], other) {
		t.Fatalf("list by the other subject: %v", keys)
	}
	if keys, _ := list(url.Values{"source": {"/usaepay"}, "id": {same}}); len(keys) != 1 || !strings.Contains(keys[0], same) {
		t.Fatalf("list by source and id: %v", keys)
	}
	if _, code := list(url.Values{"id": {same}}); code != http.StatusBadRequest {
		t.Fatalf("list by id without a source: %d, want 400", code)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", gw.Admin)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(testcaddy.Binary(t), append([]string{"webhooks"}, args...)...)
		cmd.Dir = gw.Dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy webhooks %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := cli("list", "--address", addr, "--subject", order)
	if !strings.Contains(out, "SUBJECT") || !strings.Contains(out, same) || !strings.Contains(out, subID) || strings.Contains(out, other) {
		t.Fatalf("list --subject:\n%s", out)
	}
	out = cli("list", "--address", addr, "--subject", order, "--json")
	if !strings.Contains(out, `"subject": "`+order+`"`) && !strings.Contains(out, `"subject":"`+order+`"`) {
		t.Fatalf("list --subject --json:\n%s", out)
	}

	// Purge by subject deletes that order's events, and nothing else.
	out = cli("purge", "--address", addr, "--subject", order)
	if !strings.Contains(out, "2") {
		t.Fatalf("purge --subject:\n%s", out)
	}
	if keys, _ := list(url.Values{"subject": {order}}); len(keys) != 0 {
		t.Fatalf("purged order still listed: %v", keys)
	}
	if keys, _ := list(url.Values{}); len(keys) != 1 || !strings.Contains(keys[0], other) {
		t.Fatalf("after purging the order: %v, want the other payment alone", keys)
	}
}
