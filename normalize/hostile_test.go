package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// TestDuplicateMembers refuses a repeated member name in every object the
// gateway reads a member of, naming the member, and leaves repeated names
// in parts of the payload it does not read alone.
func TestDuplicateMembers(t *testing.T) {
	usa := `{"type":"event","event_type":"transaction.sale.success","event_triggered":"2021-04-07 15:14:26",` +
		`"event_id":"c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd","event_body":%s}`
	sub := `{"webhook_type":"order","webhook_event":"order_updated","webhook_event_id":"1","webhook_event_date":"2021-03-19 18:38:40","webhook_data":%s}`
	cases := []struct {
		name, body, field string
	}{
		{"envelope", `{"type":"customer.updated","type":"customer.deleted","data":{}}`, "type"},
		{"envelope id", strings.Replace(fmt.Sprintf(usa, `{}`), `"event_id"`, `"event_id":"aa","event_id"`, 1), "event_id"},
		{"event_body", fmt.Sprintf(usa, `{"object":{"key":"a"},"object":{"key":"b"}}`), "event_body.object"},
		{"event_body.object", fmt.Sprintf(usa, `{"object":{"key":"a","type":"transaction","key":"b"}}`), "event_body.object.key"},
		{"webhook_data", fmt.Sprintf(sub, `{"order":{"id":"1"},"order":{"id":"2"}}`), "webhook_data.order"},
		{"webhook_data.order", fmt.Sprintf(sub, `{"order":{"id":"1","id":"2"}}`), "webhook_data.order.id"},
		{"loyalty data", `{"type":"customer.updated","data":{"customerId":"a","customerId":"b"}}`, "data.customerId"},
		{"loyalty item", `{"type":"customer.updated","data":[{"customerId":"a"},{"customerId":"a","customerId":"b"}]}`, "data[1].customerId"},
		{"escaped name", `{"type":"customer.updated","data":{"customerId":"a","customer\u0049d":"b"}}`, "data.customerId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Normalize([]byte(c.body), opts(Auto))
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != c.field || !strings.Contains(ie.Reason, "more than once") {
				t.Fatalf("err = %v; want a field error on %s", err, c.field)
			}
			if ie.Offset < 0 {
				t.Errorf("no offset in %v", ie)
			}
		})
	}
	// Deeper, unread levels may repeat names: the gateway does not pick a
	// value there, it passes the payload on as it came.
	deep := fmt.Sprintf(usa, `{"object":{"key":"a","card":{"n":1,"n":2}}}`)
	if _, err := Normalize([]byte(deep), opts(USAePay)); err != nil {
		t.Errorf("repeated name below the read levels refused: %v", err)
	}
	// Many members: the map path finds a repeat as the pairwise path does.
	var b strings.Builder
	b.WriteString(`{"type":"customer.updated","data":{`)
	for i := range 40 {
		fmt.Fprintf(&b, `"m%d":%d,`, i, i)
	}
	b.WriteString(`"m7":0}}`)
	if _, err := Normalize([]byte(b.String()), opts(Auto)); err == nil || !strings.Contains(err.Error(), "data.m7") {
		t.Errorf("repeat among 41 members: err = %v", err)
	}
}

func TestHexIDsLowercased(t *testing.T) {
	body := readFixture(t, "usaepay/transaction.sale.success.json")
	upper := strings.Replace(string(body), "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
		"C088BC2884A2C3B4043991B04D96CEDA7C65043778233DEDB26BFD5853705DFD", 1)
	if upper == string(body) {
		t.Fatal("fixture id not found")
	}
	a := normalizeOne(t, body, opts(USAePay))
	b := normalizeOne(t, []byte(upper), opts(USAePay))
	if a.ID != b.ID || a.ID != strings.ToLower(a.ID) {
		t.Errorf("ids %q and %q; want both lowercase and equal", a.ID, b.ID)
	}
	for in, want := range map[string]string{
		"3F2504E0-4F89-11D3-9A0C-0305E82C3301": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
		"ABCDEF0123":                           "abcdef0123",
		"Req-ABC":                              "Req-ABC", // not hex: case may matter
		"3F2504E0-4F89-11D3-9A0C":              "3F2504E0-4F89-11D3-9A0C",
	} {
		if got := normalizeID(in); got != want {
			t.Errorf("normalizeID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequestID(t *testing.T) {
	o := opts(OpenLoyalty)
	o.RequestID = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
	ev := normalizeOne(t, []byte(`{"type":"CustomerRegistered","data":{"customerId":"c1"}}`), o)
	if ev.ID != "3f2504e0-4f89-11d3-9a0c-0305e82c3301" || ev.Type != "CustomerRegistered" {
		t.Errorf("id, type = %q, %q", ev.ID, ev.Type)
	}
	var keys []string
	_, err := Each([]byte(`{"type":"PointsWillExpire","data":[{"customerId":"a"},{"customerId":"b"}]}`), o,
		func(ev *schemas.Event, key string) error {
			keys = append(keys, ev.ID+"|"+key)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// The content key comes with the request id: the caller decides
	// whether it applies (a request id no signature binds can be rewritten).
	var want []string
	for i, item := range []string{`{"customerId":"a"}`, `{"customerId":"b"}`} {
		key, err := ContentKey(DefaultSource(OpenLoyalty), "PointsWillExpire", "", []byte(item))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-0305e82c3301.%d|%s", i, key))
	}
	if !slices.Equal(keys, want) {
		t.Errorf("batch ids and keys = %v, want %v", keys, want)
	}
	// A provider id wins over the request id.
	usa := normalizeOne(t, readFixture(t, "usaepay/transaction.sale.success.json"), Options{Provider: USAePay, RequestID: "r1", ReceivedAt: received})
	if usa.ID != "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd" {
		t.Errorf("payment id = %q", usa.ID)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 201), "caf\u00e9"} {
		o.RequestID = bad
		if _, err := Normalize([]byte(`{"type":"a","data":{}}`), o); err == nil {
			t.Errorf("request id %q accepted", bad)
		}
	}
}

func TestDerivedIDsUniquePerRequest(t *testing.T) {
	body := []byte(`{"type":"customer.updated","data":{"customerId":"c1"}}`)
	var ids, keys []string
	for range 2 {
		if _, err := Each(body, opts(OpenLoyalty), func(ev *schemas.Event, key string) error {
			ids, keys = append(ids, ev.ID), append(keys, key)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] == ids[1] || keys[0] != keys[1] || !DerivedFrom(ids[0], keys[0]) || !DerivedFrom(ids[1], keys[0]) {
		t.Errorf("ids %v keys %v: want two ids of one key", ids, keys)
	}
	if DerivedFrom("c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd", keys[0]) {
		t.Error("a payment id matched a content key")
	}
	// createdAt is part of the content: the same data at another time is
	// another key.
	_, _ = Each([]byte(`{"type":"customer.updated","createdAt":"2026-11-22T10:00:00+01:00","data":{"customerId":"c1"}}`),
		opts(OpenLoyalty), func(_ *schemas.Event, key string) error {
			if key == keys[0] {
				t.Error("createdAt did not change the key")
			}
			return nil
		})
	if !DerivesIDs(OpenLoyalty) || DerivesIDs(USAePay) || DerivesIDs(Sublytics) || DerivesIDs("nope") {
		t.Error("DerivesIDs")
	}
}

func TestMaxItems(t *testing.T) {
	body := []byte(`{"type":"campaign.coupon_expiration","data":[{"customerId":"a"},{"customerId":"b"},{"customerId":"c"}]}`)
	o := opts(OpenLoyalty)
	o.MaxItems = 2
	_, err := Normalize(body, o)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Kind != KindTooLarge || !strings.Contains(ie.Error(), "more than 2 items") {
		t.Fatalf("err = %v; want KindTooLarge", err)
	}
	o.MaxItems = 3
	if evs, err := Normalize(body, o); err != nil || len(evs) != 3 {
		t.Fatalf("3 items under a bound of 3: %d, %v", len(evs), err)
	}
	// Nothing is emitted for a batch refused by a later item.
	bad := []byte(`{"type":"campaign.coupon_expiration","data":[{"customerId":"a"},7]}`)
	n := 0
	if _, err := Each(bad, opts(OpenLoyalty), func(*schemas.Event, string) error { n++; return nil }); err == nil || n != 0 {
		t.Errorf("err %v after %d events; want an error and none", err, n)
	}
	// fn's error stops Each and comes back as it is.
	stop := errors.New("full")
	n = 0
	_, err = Each(body, opts(OpenLoyalty), func(*schemas.Event, string) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("err %v after %d events; want fn's error after one", err, n)
	}
}

func TestMaxAge(t *testing.T) {
	body := readFixture(t, "usaepay/transaction.sale.success.json") // 2021-04-07 15:14:26
	o := opts(USAePay)
	o.MaxAge = 24 * time.Hour
	o.ReceivedAt = time.Date(2021, 4, 8, 15, 14, 26, 0, time.UTC) // exactly 24h later
	if _, err := Normalize(body, o); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	o.ReceivedAt = o.ReceivedAt.Add(time.Second)
	_, err := Normalize(body, o)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Field != "event_triggered" || !strings.Contains(ie.Reason, "24h0m0s") {
		t.Fatalf("err = %v; want event_triggered too old", err)
	}
	// The zone the route reads times in counts.
	o.Location, _ = time.LoadLocation("America/New_York") // 15:14:26 EDT is 19:14:26Z
	if _, err := Normalize(body, o); err != nil {
		t.Errorf("in New York the event is younger: %v", err)
	}
	// A subscription event with no date is never too old.
	sub := []byte(`{"webhook_type":"order","webhook_event":"order_updated","webhook_event_id":"1","webhook_event_date":"0000-00-00 00:00:00","webhook_data":{}}`)
	so := opts(Sublytics)
	so.MaxAge = time.Nanosecond
	if _, err := Normalize(sub, so); err != nil {
		t.Errorf("no date: %v", err)
	}
}

func TestShipmentSubject(t *testing.T) {
	for body, want := range map[string]string{
		`{"shipment":{"shipment_id":"s1"}}`:           "s1",
		`{"shipment":{"id":"i1","shipment_id":"s1"}}`: "i1",
		`{"shipment_id":77,"shipment":{}}`:            "77",
	} {
		b := `{"webhook_type":"shipment","webhook_event":"shipment_scheduled","webhook_event_id":10001,"webhook_event_date":"2021-03-19 18:38:40","webhook_data":` + body + `}`
		if ev := normalizeOne(t, []byte(b), opts(Auto)); ev.Subject != want || ev.ID != "shipment:10001" {
			t.Errorf("%s: subject %q id %q; want %q", body, ev.Subject, ev.ID, want)
		}
	}
}

// TestRegistry holds the event type lists, the published JSON Schema and
// the Go validator to the registry: every registered name passes both, and
// neither lists names of its own.
func TestRegistry(t *testing.T) {
	names := Providers()
	if !slices.Equal(names, []string{OpenLoyalty, Sublytics, USAePay}) {
		t.Errorf("Providers() = %v", names)
	}
	doc := decode(t, schemas.CanonicalEventJSONSchema)
	if enum := path(doc, "properties", "provider", "enum"); enum != nil {
		t.Errorf("the JSON Schema lists providers %v: the registry is the list", enum)
	}
	for _, p := range names {
		if len(EventTypes[p]) == 0 {
			t.Errorf("%s lists no event types", p)
		}
		ev := schemas.Event{
			SpecVersion: schemas.SpecVersion, ID: "1", Source: "/" + p, Type: "t",
			Time: time.Unix(0, 0).UTC(), DataContentType: schemas.DataContentType,
			Data: []byte(`{}`), Provider: p, ReceivedAt: time.Unix(0, 0).UTC(),
		}
		checkEvent(t, ev)
	}
	if err := CheckOptions(Options{Provider: "stripe"}); !errors.Is(err, ErrUnknownProvider) ||
		!strings.Contains(err.Error(), "openloyalty, sublytics, usaepay or auto") {
		t.Errorf("unknown provider: %v", err)
	}
}

// TestEnvelopeTags checks the validator tags of the envelope types, which
// give the provider its error messages.
func TestEnvelopeTags(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{&USAePayEnvelope{Type: "event", EventType: "x", EventID: "abc", EventBody: json.RawMessage(`{}`)},
			"event_id: must be 64 hex characters"},
		{&USAePayEnvelope{Type: "evt", EventType: "x", EventID: strings.Repeat("a", 64), EventBody: json.RawMessage(`{}`)},
			`type: must be "event"`},
		{&USAePayEnvelope{Type: "event", EventType: "x", EventTriggered: "2021-04-07T15:14:26", EventID: strings.Repeat("a", 64), EventBody: json.RawMessage(`{}`)},
			`event_triggered: must be "YYYY-MM-DD hh:mm:ss" (or "0000-00-00 00:00:00" for none), got "2021-04-07T15:14:26"`},
		{&USAePayEnvelope{Type: "event", EventType: "x", EventID: strings.Repeat("a", 64), EventBody: json.RawMessage(`"x"`)},
			"event_body: must be a JSON object or array"},
		{&SublyticsEnvelope{WebhookType: "order", WebhookEvent: "order_updated", WebhookEventDate: schemas.ZeroProviderTime, WebhookData: json.RawMessage(`[]`)},
			"webhook_event_id: must not be empty"},
		{&OpenLoyaltyEnvelope{Type: "x", Data: json.RawMessage(`[]`)},
			"data: must be a JSON object or a non-empty array of objects"},
		{&OpenLoyaltyEnvelope{Type: "x", Data: json.RawMessage(`[{}, 1]`)},
			"data: must be a JSON object or a non-empty array of objects"},
		{&OpenLoyaltyEnvelope{Type: "x", Data: json.RawMessage(`{}`), CreatedAt: "yesterday"},
			`createdAt: must be an RFC 3339 date-time with offset, like "2020-09-24T14:09:13+02:00", got "yesterday"`},
		{&OpenLoyaltyEnvelope{Data: json.RawMessage(`{}`)}, "type: must not be empty"},
	}
	for _, c := range cases {
		err := schemas.Validate(c.v)
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v:\n got %v\nwant %s", c.v, err, c.want)
		}
	}
	good := []any{
		&USAePayEnvelope{Type: "event", EventType: "x", EventTriggered: "2021-04-07 15:14:26", EventID: strings.Repeat("aF", 32), EventBody: json.RawMessage(`{}`)},
		&SublyticsEnvelope{WebhookType: "order", WebhookEvent: "order_updated", WebhookEventID: "4806", WebhookData: json.RawMessage(` {}`)},
		&OpenLoyaltyEnvelope{Type: "x", Data: json.RawMessage(`[{"a":"]"}, {}]`), CreatedAt: "2020-09-24T14:09:13+02:00"},
	}
	for _, v := range good {
		if err := schemas.Validate(v); err != nil {
			t.Errorf("%+v: %v", v, err)
		}
	}
	// The types decode a body with encoding/json too.
	var sub SublyticsEnvelope
	body := `{"webhook_type":"order","webhook_event":"order_updated","webhook_event_id":10001,"webhook_event_date":"2021-03-19 18:38:40","webhook_data":{}}`
	if err := json.Unmarshal([]byte(body), &sub); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(&sub); sub.WebhookEventID != "10001" || err != nil {
		t.Errorf("decoded id %q, %v", sub.WebhookEventID, err)
	}
}
