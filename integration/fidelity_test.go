package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// fidelitySite takes each provider on an async route, as its sender really
// behaves: loyalty events without ids (a short dedup window so a test can
// outwait it, and a second route with the window off), subscription events
// of several webhook types on one route, payment events with the default
// event age bound.
func fidelitySite(backend string) string {
	return fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			auth header %[2]s {env.TEST_LOYALTY_TOKEN}
			dedup_window 3s
			id_header X-Webhook-Request-Id
			max_items 3
			upstream %[1]s
		}
	}
	route /hooks/loyalty-nodedup {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			source /loyalty-nodedup
			auth header %[2]s {env.TEST_LOYALTY_TOKEN}
			dedup_window off
			upstream %[1]s
		}
	}
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			auth path_secret {env.TEST_SUBLYTICS_SECRET}
			upstream %[1]s
		}
	}
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			auth hmac {env.TEST_SIG_KEY}
			upstream %[1]s
		}
	}
}
`, backend, loyaltyHeader)
}

func startFidelity(t *testing.T) (*testcaddy.Instance, *backend) {
	t.Helper()
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(fidelitySite(be.URL))
	return gw, be
}

// freshPaymentEvent is paymentEvent triggered now, inside any event age
// bound.
func freshPaymentEvent(t *testing.T) (string, []byte) {
	id, body := paymentEvent(t)
	return id, []byte(strings.Replace(string(body), "2021-04-07 15:14:26", time.Now().UTC().Format("2006-01-02 15:04:05"), 1))
}

// deliveredIDs lists the ids of the events delivered with the given type
// and source, in delivery order, repeats included.
func (b *backend) deliveredIDs(source, typ string) []string {
	var ids []string
	for _, r := range b.received() {
		if r.Event["type"] == typ && r.Event["source"] == source && r.Status < 300 {
			ids = append(ids, r.Event["id"].(string))
		}
	}
	return ids
}

// TestLoyaltyDedupWindow: the loyalty platform sends no event id, and its
// customer.updated body is only the customer's id. A repeat inside the
// window is one event; the same body after the window is a real second
// update and is delivered with an id of its own; so is the same data with
// another createdAt; with the window off, every request is an event.
func TestLoyaltyDedupWindow(t *testing.T) {
	gw, be := startFidelity(t)
	url := gw.BaseURL() + "/hooks/openloyalty"
	body := []byte(`{"type":"customer.updated","data":{"customerId":"4f1c9a9e-31b6-4bd4-9a77-0c0a4bd3c7a1"}}`)

	code, first := post(t, url, body, loyaltyHeaders())
	if code != http.StatusAccepted {
		t.Fatalf("first: %d %v", code, first)
	}
	code, again := post(t, url, body, loyaltyHeaders())
	if code != http.StatusOK || again["status"] != "duplicate" || again["id"] != first["id"] {
		t.Fatalf("repeat inside the window: %d %v; want duplicate of %v", code, again, first["id"])
	}
	testwait.For(t, "first delivery", func() bool { return len(be.deliveredIDs("/openloyalty", "customer.updated")) == 1 })

	time.Sleep(3500 * time.Millisecond) // past the route's 3s window
	code, later := post(t, url, body, loyaltyHeaders())
	if code != http.StatusAccepted || later["id"] == first["id"] {
		t.Fatalf("after the window: %d %v; want a new event with a new id", code, later)
	}
	testwait.For(t, "second delivery", func() bool { return len(be.deliveredIDs("/openloyalty", "customer.updated")) == 2 })
	ids := be.deliveredIDs("/openloyalty", "customer.updated")
	if ids[0] != first["id"] || ids[1] != later["id"] {
		t.Errorf("delivered %v, want %v then %v", ids, first["id"], later["id"])
	}

	// The same data at two different createdAt times: two events, even
	// inside the window.
	at := func(ts string) []byte {
		return []byte(`{"type":"account.available_points_amount_changed","createdAt":"` + ts +
			`","data":{"customerId":"c-77","amount":10}}`)
	}
	for _, ts := range []string{"2026-11-22T10:00:00+01:00", "2026-11-22T10:00:05+01:00"} {
		if code, a := post(t, url, at(ts), loyaltyHeaders()); code != http.StatusAccepted {
			t.Fatalf("createdAt %s: %d %v", ts, code, a)
		}
	}
	testwait.For(t, "two createdAt deliveries", func() bool {
		return len(be.deliveredIDs("/openloyalty", "account.available_points_amount_changed")) == 2
	})

	// dedup_window off: two identical requests are two events.
	off := gw.BaseURL() + "/hooks/loyalty-nodedup"
	_, a1 := post(t, off, body, loyaltyHeaders())
	code, a2 := post(t, off, body, loyaltyHeaders())
	if code != http.StatusAccepted || a1["id"] == a2["id"] {
		t.Fatalf("window off: %v then %d %v; want two events", a1, code, a2)
	}
	testwait.For(t, "deliveries without dedup", func() bool {
		return len(be.deliveredIDs("/loyalty-nodedup", "customer.updated")) == 2
	})
}

// TestLoyaltyRequestIDHeader: the hosted platform's X-Webhook-Request-Id is
// a stable id: its retry after the window is still a duplicate, and
// another request id is another event even with the same content.
func TestLoyaltyRequestIDHeader(t *testing.T) {
	gw, be := startFidelity(t)
	url := gw.BaseURL() + "/hooks/openloyalty"
	body := []byte(`{"type":"CustomerRegistered","data":{"customerId":"c-9"}}`)
	h := loyaltyHeaders()
	h.Set("X-Webhook-Request-Id", "6F9619FF-8B86-D011-B42D-00C04FC964FF")

	code, first := post(t, url, body, h)
	if code != http.StatusAccepted || first["id"] != "6f9619ff-8b86-d011-b42d-00c04fc964ff" {
		t.Fatalf("first: %d %v; want the lowercased request id", code, first)
	}
	time.Sleep(3500 * time.Millisecond) // past the dedup window
	if code, again := post(t, url, body, h); code != http.StatusOK || again["status"] != "duplicate" {
		t.Fatalf("retry with the same request id: %d %v", code, again)
	}
	h.Set("X-Webhook-Request-Id", "0b1c8a1e-0000-4000-8000-000000000002")
	if code, other := post(t, url, body, h); code != http.StatusAccepted {
		t.Fatalf("another request id: %d %v", code, other)
	}
	testwait.For(t, "two deliveries", func() bool { return len(be.deliveredIDs("/openloyalty", "CustomerRegistered")) == 2 })
	// Once both are delivered no worker sends either again: the count is final.
	waitStatus(t, gw, "/openloyalty", "6f9619ff-8b86-d011-b42d-00c04fc964ff", "delivered")
	waitStatus(t, gw, "/openloyalty", "0b1c8a1e-0000-4000-8000-000000000002", "delivered")
	if n := len(be.deliveredIDs("/openloyalty", "CustomerRegistered")); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

// TestSublyticsIDsAcrossWebhookTypes: the platform numbers events per
// webhook type, so an order event and a shipment event with the same number
// are two events.
func TestSublyticsIDsAcrossWebhookTypes(t *testing.T) {
	gw, be := startFidelity(t)
	url := gw.BaseURL() + "/hooks/sublytics/" + sublyticsToken
	event := func(typ, name, object string) []byte {
		return []byte(`{"webhook_type":"` + typ + `","webhook_event":"` + name + `","webhook_event_id":10001,` +
			`"webhook_event_date":"` + time.Now().UTC().Format("2006-01-02 15:04:05") + `","webhook_data":{"` + typ + `":` + object + `}}`)
	}
	for _, b := range [][]byte{
		event("order", "order_updated", `{"id":"223827"}`),
		event("shipment", "shipment_scheduled", `{"shipment_id":"447405"}`),
	} {
		if code, a := post(t, url, b, nil); code != http.StatusAccepted {
			t.Fatalf("%s: %d %v", b, code, a)
		}
	}
	testwait.For(t, "both deliveries", func() bool {
		return len(be.deliveredIDs("/sublytics", "order_updated"))+len(be.deliveredIDs("/sublytics", "shipment_scheduled")) == 2
	})
	for _, r := range be.received() {
		checkCloudEvent(t, r)
		typ := strings.SplitN(r.Event["id"].(string), ":", 2)[0]
		if r.Event["providereventid"] != "10001" || (typ != "order" && typ != "shipment") {
			t.Errorf("id %v providereventid %v", r.Event["id"], r.Event["providereventid"])
		}
		if typ == "shipment" && r.Event["subject"] != "447405" {
			t.Errorf("shipment subject = %v, want its shipment_id", r.Event["subject"])
		}
	}
}

// TestPaymentIDCaseAndAge: an uppercased event_id is the same event; an
// event older than the route's max_event_age (retention minus a day by
// default) is refused, so a captured request replayed after its dedup key
// expired is not delivered again.
func TestPaymentIDCaseAndAge(t *testing.T) {
	gw, be := startFidelity(t)
	url := gw.BaseURL() + "/hooks/usaepay"
	id, body := freshPaymentEvent(t)
	if code, a := post(t, url, body, signedHeader(body)); code != http.StatusAccepted || a["id"] != id {
		t.Fatalf("lowercase id: %d %v", code, a)
	}
	upper := []byte(strings.Replace(string(body), id, strings.ToUpper(id), 1))
	if code, a := post(t, url, upper, signedHeader(upper)); code != http.StatusOK || a["status"] != "duplicate" || a["id"] != id {
		t.Fatalf("uppercase id: %d %v; want duplicate of %s", code, a, id)
	}
	testwait.For(t, "delivery", func() bool { return be.count(id) == 1 })

	_, old := paymentEvent(t) // event_triggered in 2021
	code, a := post(t, url, old, signedHeader(old))
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(a["error"]), "event_triggered") {
		t.Fatalf("2021 event: %d %v; want 400 naming event_triggered", code, a)
	}
	// The refused event was never stored, and a delivered one is not sent
	// again: the count is final.
	waitStatus(t, gw, "/usaepay", id, "delivered")
	if n := be.count(id); n != 1 {
		t.Errorf("backend received %d copies", n)
	}
}

// TestEnvelopeBoundsThroughTheBinary: duplicate member names (I-JSON) get a
// 400 naming the member; a batch over max_items gets 413.
func TestEnvelopeBoundsThroughTheBinary(t *testing.T) {
	gw, _ := startFidelity(t)
	_, body := freshPaymentEvent(t)
	dup := []byte(strings.Replace(string(body), `"object":{"type":"transaction","key":"`, `"object":{"key":"other","type":"transaction","key":"`, 1))
	code, a := post(t, gw.BaseURL()+"/hooks/usaepay", dup, signedHeader(dup))
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(a["error"]), "event_body.object.key") {
		t.Fatalf("duplicate object.key: %d %v", code, a)
	}
	batch := []byte(`{"type":"campaign.coupon_expiration","data":[{"customerId":"a"},{"customerId":"b"},{"customerId":"c"},{"customerId":"d"}]}`)
	code, a = post(t, gw.BaseURL()+"/hooks/openloyalty", batch, loyaltyHeaders())
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(a["error"]), "more than 3 items") {
		t.Fatalf("4 items over max_items 3: %d %v", code, a)
	}
}
