package normalize

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

var received = time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)

func opts(provider string) Options {
	return Options{Provider: provider, ReceivedAt: received}
}

func normalizeOne(t *testing.T, body []byte, o Options) schemas.Event {
	t.Helper()
	evs, err := Normalize(body, o)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	checkEvent(t, evs[0])
	return evs[0]
}

// TestFixtures normalizes every fixture both with its provider set and
// with auto-detection, and checks each event against an independent
// reading of the fixture.
func TestFixtures(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.path, func(t *testing.T) {
			byProvider, err := Normalize(f.body, opts(f.provider))
			if err != nil {
				t.Fatalf("Normalize as %s: %v", f.provider, err)
			}
			// An auto route writes a source of its own, never the
			// detected provider's.
			autoDefault, err := Normalize(f.body, opts(Auto))
			if err != nil {
				t.Fatalf("Normalize auto: %v", err)
			}
			for _, ev := range autoDefault {
				if ev.Source != AutoSource || ev.Provider != f.provider {
					t.Errorf("auto: source, provider = %q, %q; want %q, %q", ev.Source, ev.Provider, AutoSource, f.provider)
				}
			}
			// Given the provider's source, auto reads the body exactly as
			// the provider's route does.
			o := opts(Auto)
			o.Source = DefaultSource(f.provider)
			auto, err := Normalize(f.body, o)
			if err != nil {
				t.Fatalf("Normalize auto: %v", err)
			}
			if len(auto) != len(byProvider) {
				t.Fatalf("auto gave %d events, %s gave %d", len(auto), f.provider, len(byProvider))
			}
			if p, err := Detect(f.body); err != nil || p != f.provider {
				t.Errorf("Detect = %q, %v; want %q", p, err, f.provider)
			}
			doc := decode(t, f.body)
			for i, ev := range byProvider {
				checkEvent(t, ev)
				if !equalEvents(ev, auto[i]) {
					t.Errorf("auto event differs:\n%+v\n%+v", auto[i], ev)
				}
				if ev.Provider != f.provider || ev.Source != "/"+f.provider {
					t.Errorf("provider, source = %q, %q", ev.Provider, ev.Source)
				}
				if !ev.ReceivedAt.Equal(received) || ev.ReceivedAt.Location() != time.UTC {
					t.Errorf("receivedat = %v", ev.ReceivedAt)
				}
				if f.eventType != "" && ev.Type != f.eventType {
					t.Errorf("type = %q, want %q (the file name)", ev.Type, f.eventType)
				}
				checkAgainstDocument(t, f.provider, doc, ev, i)
			}
		})
	}
}

func equalEvents(a, b schemas.Event) bool {
	return sameID(a.ID, b.ID) && a.Source == b.Source && a.Type == b.Type && a.Subject == b.Subject &&
		a.Time.Equal(b.Time) && bytes.Equal(a.Data, b.Data) && a.Provider == b.Provider && a.ReceivedAt.Equal(b.ReceivedAt)
}

// sameID compares ids, taking two derived ids of the same content (which
// differ in their random part) as the same.
func sameID(a, b string) bool {
	if a == b {
		return true
	}
	ka, _, okA := strings.Cut(a, "-")
	kb, _, okB := strings.Cut(b, "-")
	return okA && okB && len(ka) == derivedKeyDigits && ka == kb
}

// checkAgainstDocument recomputes id, time, subject and data from the
// generically decoded body, the way a reader of DESIGN.md would.
func checkAgainstDocument(t *testing.T, provider string, doc any, ev schemas.Event, item int) {
	t.Helper()
	var (
		id, subject string
		when        = received
		data        any
	)
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	local := func(s string) time.Time {
		if s == "" || s == schemas.ZeroProviderTime {
			return received
		}
		tm, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	switch provider {
	case USAePay:
		id = strings.ToLower(str(path(doc, "event_id")))
		subject = str(path(doc, "event_body", "object", "key"))
		when = local(str(path(doc, "event_triggered")))
		data = path(doc, "event_body")
	case Sublytics:
		id = str(path(doc, "webhook_type")) + ":" + str(path(doc, "webhook_event_id"))
		if ev.ProviderEventID != str(path(doc, "webhook_event_id")) {
			t.Errorf("providereventid = %q", ev.ProviderEventID)
		}
		object := path(doc, "webhook_data", str(path(doc, "webhook_type")))
		if subject = str(path(object, "id")); subject == "" {
			subject = str(path(object, "shipment_id"))
		}
		when = local(str(path(doc, "webhook_event_date")))
		data = path(doc, "webhook_data")
	case OpenLoyalty:
		data = path(doc, "data")
		if items, ok := data.([]any); ok {
			data = items[item]
		}
		for _, k := range []string{"customerId", "transactionId", "accountId"} {
			if subject = str(path(data, k)); subject != "" {
				break
			}
		}
		if c := str(path(doc, "createdAt")); c != "" {
			tm, err := time.Parse(time.RFC3339, c)
			if err != nil {
				t.Fatal(err)
			}
			when = tm
		}
		key := oracleKey(t, "/"+OpenLoyalty, str(path(doc, "type")), str(path(doc, "createdAt")), data)
		if !DerivedFrom(ev.ID, key) {
			t.Errorf("id = %q, not derived from %s", ev.ID, key)
		}
		id = ev.ID
	}
	if ev.ID != id {
		t.Errorf("id = %q, want %q", ev.ID, id)
	}
	if ev.Subject != subject {
		t.Errorf("subject = %q, want %q", ev.Subject, subject)
	}
	if !ev.Time.Equal(when) || ev.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v in UTC", ev.Time, when)
	}
	want, _ := json.Marshal(data)
	if got := compact(t, ev.Data); got != string(want) {
		t.Errorf("data = %s\nwant %s", got, want)
	}
}

// oracleKey derives a loyalty content key with encoding/json's own
// sorted-key encoding, a second implementation of the documented canonical
// form for data without the characters the two escape differently.
func oracleKey(t *testing.T, source, typ, createdAt string, data any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		t.Fatal(err)
	}
	var in []byte
	in = binary.BigEndian.AppendUint64(in, uint64(len(source)))
	in = append(in, source...)
	in = binary.BigEndian.AppendUint64(in, uint64(len(typ)))
	in = append(in, typ...)
	in = binary.BigEndian.AppendUint64(in, uint64(len(createdAt)))
	in = append(in, createdAt...)
	in = append(in, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
	sum := sha256.Sum256(in)
	return hex.EncodeToString(sum[:])
}

// TestSeedExamples pins concrete values for the examples in the provider
// documents.
func TestSeedExamples(t *testing.T) {
	cases := []struct {
		fixture                   string
		id, typ, subject, timeUTC string
	}{
		{"usaepay/transaction.sale.success.json", "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
			"transaction.sale.success", "1nftvzx7xtcggm3", "2021-04-07T15:14:26Z"},
		{"sublytics/order_updated.json", "order:1324319", "order_updated", "223827", "2021-04-15T11:13:33Z"},
		{"sublytics/transaction_completed.json", "transaction:1324324", "transaction_completed", "853565", "2021-04-15T11:13:34Z"},
		{"sublytics/order_offer_updated.json", "order_offer:4779", "order_offer_updated", "145148", "2021-03-19T14:46:01Z"},
		{"sublytics/shipment_shipped.json", "shipment:1324396", "shipment_shipped", "447405", "2021-04-15T11:13:45Z"},
		{"sublytics/extra/format.json", "order:4806", "order_updated", "", "2021-03-19T18:38:40Z"},
		{"sublytics/extra/order_offer_updated_v2.json", "order_offer:10001", "order_offer_updated", "145148", "2021-03-19T14:46:01Z"},
		// The content key of a derived id is a golden value: changing it
		// changes every loyalty event's dedup key (the id shows its first
		// 32 digits; the rest of the id is random).
		{"openloyalty/customer.updated.json", "f5df2b2f29390065887582f479331306cca566aaf0ad212d8ad9288dab246d0a",
			"customer.updated", "32c764d9-ddd5-401f-ac13-a7fcba0982ff", "2026-11-22T10:00:00.123456Z"},
		{"openloyalty/transaction.registered.json", "", "transaction.registered", "cb4cc2f7-d897-4fe0-b5a6-9b67a91c0729", "2026-11-22T10:00:00.123456Z"},
		{"openloyalty/customer.bought_campaign.json", "", "customer.bought_campaign", "00000000-0000-474c-b092-b0dd880c07e1", "2020-09-24T12:09:13Z"},
		{"openloyalty/account.points_transfer.json", "", "account.points_transfer", "00000000-0000-474c-b092-b0dd880c07f3", "2020-09-24T12:09:13Z"},
		{"openloyalty/account.expiring_points_notification.json", "", "account.expiring_points_notification", "00000000-0000-474c-b092-b0dd880c07e1", "2021-12-14T14:16:54Z"},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			// The golden key is the loyalty route's: its source is part
			// of the key.
			o := opts(Auto)
			o.Source = DefaultSource(strings.Split(c.fixture, "/")[0])
			ev := normalizeOne(t, readFixture(t, c.fixture), o)
			if len(c.id) == 64 && ev.Provider == OpenLoyalty {
				if !DerivedFrom(ev.ID, c.id) {
					t.Errorf("id = %q, not derived from %s", ev.ID, c.id)
				}
			} else if c.id != "" && ev.ID != c.id {
				t.Errorf("id = %q, want %q", ev.ID, c.id)
			}
			if ev.Type != c.typ || ev.Subject != c.subject {
				t.Errorf("type, subject = %q, %q; want %q, %q", ev.Type, ev.Subject, c.typ, c.subject)
			}
			if got := ev.Time.Format(time.RFC3339Nano); got != c.timeUTC {
				t.Errorf("time = %s, want %s", got, c.timeUTC)
			}
		})
	}
}

// TestCanonicalDocument checks the delivered form against DESIGN.md's
// example event.
func TestCanonicalDocument(t *testing.T) {
	ev := normalizeOne(t, readFixture(t, "usaepay/transaction.sale.success.json"), opts(USAePay))
	doc, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",` +
		`"source":"/usaepay","type":"transaction.sale.success","subject":"1nftvzx7xtcggm3","time":"2021-04-07T15:14:26Z",` +
		`"datacontenttype":"application/json","data":{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},` +
		`"object":{"type":"transaction","key":"1nftvzx7xtcggm3","amount_detail":{"amount":"5.00"},"authcode":"538228"}},` +
		`"provider":"usaepay","receivedat":"2026-11-22T10:00:00.123456Z"}`
	if string(doc) != want {
		t.Errorf("got  %s\nwant %s", doc, want)
	}
}

func TestDocumentedTypesHaveFixtures(t *testing.T) {
	have := map[string]bool{}
	for _, f := range fixtures(t) {
		if f.eventType != "" {
			have[f.provider+"/"+f.eventType] = true
		}
	}
	wantCounts := map[string]int{OpenLoyalty: 14, Sublytics: 16, USAePay: 30}
	for p, types := range EventTypes {
		if len(types) != wantCounts[p] {
			t.Errorf("%s: %d documented types, want %d", p, len(types), wantCounts[p])
		}
		for _, typ := range types {
			if !have[p+"/"+typ] {
				t.Errorf("no fixture testdata/%s/%s.json", p, typ)
			}
			if !Documented(p, typ) {
				t.Errorf("Documented(%q, %q) = false", p, typ)
			}
		}
	}
	if len(have) != 14+16+30 {
		t.Errorf("%d one-per-type fixtures, want %d", len(have), 14+16+30)
	}
	for event, object := range SublyticsObjectTypes {
		if !Documented(Sublytics, event) {
			t.Errorf("SublyticsObjectTypes has undocumented %q", event)
		}
		var env struct {
			WebhookType string `json:"webhook_type"`
		}
		if err := json.Unmarshal(readFixture(t, "sublytics/"+event+".json"), &env); err != nil || env.WebhookType != object {
			t.Errorf("fixture for %s has webhook_type %q, want %q", event, env.WebhookType, object)
		}
	}
	for _, typ := range LoyaltyBatchTypes {
		if !Documented(OpenLoyalty, typ) {
			t.Errorf("LoyaltyBatchTypes has undocumented %q", typ)
		}
	}
}

func TestTimeZones(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	usaepay := readFixture(t, "usaepay/transaction.sale.success.json")
	sub := readFixture(t, "sublytics/order_updated.json")
	winter := bytes.Replace(sub, []byte(`"2021-04-15 11:13:33",`), []byte(`"2021-01-15 10:00:00",`), 1)
	cases := []struct {
		name string
		body []byte
		loc  *time.Location
		want string
	}{
		{"usaepay UTC", usaepay, nil, "2021-04-07T15:14:26Z"},
		{"usaepay New York, daylight time", usaepay, ny, "2021-04-07T19:14:26Z"},
		{"sublytics New York, daylight time", sub, ny, "2021-04-15T15:13:33Z"},
		{"sublytics New York, standard time", winter, ny, "2021-01-15T15:00:00Z"},
		{"sublytics fixed zone", sub, time.FixedZone("UTC+2", 2*3600), "2021-04-15T09:13:33Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts(Auto)
			o.Location = c.loc
			ev := normalizeOne(t, c.body, o)
			if got := ev.Time.Format(time.RFC3339Nano); got != c.want {
				t.Errorf("time = %s, want %s", got, c.want)
			}
			if ev.Time.Location() != time.UTC {
				t.Errorf("time is in %v, want UTC", ev.Time.Location())
			}
		})
	}

	// A loyalty createdAt carries its own offset: the route's zone does
	// not apply.
	o := opts(Auto)
	o.Location = ny
	ev := normalizeOne(t, readFixture(t, "openloyalty/customer.bought_campaign.json"), o)
	if got := ev.Time.Format(time.RFC3339); got != "2020-09-24T12:09:13Z" {
		t.Errorf("loyalty time = %s", got)
	}

	// The receive time is reported in UTC whatever zone it was taken in.
	o = opts(Auto)
	o.ReceivedAt = received.In(ny)
	ev = normalizeOne(t, readFixture(t, "openloyalty/customer.updated.json"), o)
	if ev.ReceivedAt.Location() != time.UTC || !ev.ReceivedAt.Equal(received) || !ev.Time.Equal(received) {
		t.Errorf("receivedat = %v, time = %v", ev.ReceivedAt, ev.Time)
	}
}

func TestAbsentProviderTime(t *testing.T) {
	for _, date := range []string{schemas.ZeroProviderTime, ""} {
		for _, f := range []struct{ fixture, old string }{
			{"sublytics/order_offer_updated.json", `"webhook_event_date": "2021-03-19 14:46:01"`},
			{"usaepay/transaction.sale.success.json", `"event_triggered": "2021-04-07 15:14:26"`},
		} {
			body := readFixture(t, f.fixture)
			key, _, _ := strings.Cut(f.old, ":")
			nb := bytes.Replace(body, []byte(f.old), []byte(key+`: "`+date+`"`), 1)
			if bytes.Equal(nb, body) {
				t.Fatalf("%s: date not found", f.fixture)
			}
			ev := normalizeOne(t, nb, opts(Auto))
			if !ev.Time.Equal(received) {
				t.Errorf("%s with %q: time = %v, want the receive time", f.fixture, date, ev.Time)
			}
		}
	}
}

func TestSublyticsIDForms(t *testing.T) {
	base := readFixture(t, "sublytics/order_offer_updated.json")
	// The fixture's webhook_type is order_offer: the id carries it, the
	// provider's number is providereventid.
	cases := []struct{ raw, want string }{
		{`"4779"`, "4779"},
		{`4779`, "4779"},
		{`10001`, "10001"},
		{`0`, "0"},
		{`"A-17"`, "A-17"},
		{`18446744073709551616123`, "18446744073709551616123"}, // beyond int64: kept as text
	}
	for _, c := range cases {
		body := bytes.Replace(base, []byte(`"webhook_event_id": "4779"`), []byte(`"webhook_event_id": `+c.raw), 1)
		ev := normalizeOne(t, body, opts(Sublytics))
		if ev.ID != "order_offer:"+c.want || ev.ProviderEventID != c.want {
			t.Errorf("webhook_event_id %s: id = %q, providereventid %q; want order_offer:%s", c.raw, ev.ID, ev.ProviderEventID, c.want)
		}
	}
	// A numeric subject is kept as written too.
	body := bytes.Replace(base, []byte(`"id": "145148"`), []byte(`"id": 145148`), 1)
	if ev := normalizeOne(t, body, opts(Sublytics)); ev.Subject != "145148" {
		t.Errorf("numeric subject = %q", ev.Subject)
	}
}

func TestDerivedID(t *testing.T) {
	id := func(source, typ, data string) string {
		t.Helper()
		s, err := ContentKey(source, typ, "", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := id("/openloyalty", "customer.updated", `{"customerId":"x","n":1.50,"list":[{"b":1,"a":2}],"s":"A\n"}`)
	same := []string{
		"{ \"s\" : \"\\u0041\\n\",\n\t\"list\": [ {\"a\":2, \"b\":1} ], \"n\": 1.50, \"customerId\": \"x\" }",
		`{"n":1.50,"customerId":"\u0078","s":"A\u000a","list":[{"b":1,"a":2}]}`,
		`{"customerId":"x","n":1.50,"list":[{"b":1,"a":2}],"s":"A\n","n":1.50}`,
	}
	for _, d := range same {
		if got := id("/openloyalty", "customer.updated", d); got != a {
			t.Errorf("id of %s differs", d)
		}
	}
	different := map[string]string{
		"other source":    id("/loyalty-eu", "customer.updated", `{"customerId":"x","n":1.50,"list":[{"b":1,"a":2}],"s":"A\n"}`),
		"other type":      id("/openloyalty", "customer.deleted", `{"customerId":"x","n":1.50,"list":[{"b":1,"a":2}],"s":"A\n"}`),
		"number spelling": id("/openloyalty", "customer.updated", `{"customerId":"x","n":1.5,"list":[{"b":1,"a":2}],"s":"A\n"}`),
		"nested value":    id("/openloyalty", "customer.updated", `{"customerId":"x","n":1.50,"list":[{"b":1,"a":3}],"s":"A\n"}`),
	}
	for name, got := range different {
		if got == a {
			t.Errorf("%s: same id", name)
		}
	}
	if id("/s", "t", `[1,2]`) == id("/s", "t", `[2,1]`) {
		t.Error("array order is significant")
	}
	// Length prefixes keep the parts apart.
	if id("/a", "bc", `{}`) == id("/ab", "c", `{}`) {
		t.Error("source/type boundary is ambiguous")
	}
	// A later duplicate wins, as it does for encoding/json.
	if id("/s", "t", `{"k":1,"k":2}`) != id("/s", "t", `{"k":2}`) {
		t.Error("duplicate member: last should win")
	}
	if _, err := ContentKey("/s", "t", "", []byte(`{"k":`)); err == nil {
		t.Error("ContentKey accepted invalid JSON")
	}
	if k1, _ := ContentKey("/s", "t", "2020-09-24T14:09:13+02:00", []byte(`{}`)); k1 == id("/s", "t", `{}`) {
		t.Error("createdAt is not part of the key")
	}

	// Through Normalize: the same notification re-sent with other
	// formatting dedups; the same body on another source does not.
	body := readFixture(t, "openloyalty/customer.registered.json")
	var generic any
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	reformatted, _ := json.Marshal(generic) // sorted keys, no whitespace
	e1 := normalizeOne(t, body, opts(OpenLoyalty))
	e2 := normalizeOne(t, reformatted, opts(OpenLoyalty))
	if !sameID(e1.ID, e2.ID) {
		t.Errorf("reformatted body got another content key: %s vs %s", e1.ID, e2.ID)
	}
	if e1.ID == e2.ID {
		t.Errorf("two requests share the id %s: each accepted event needs its own", e1.ID)
	}
	o := opts(OpenLoyalty)
	o.Source = "/loyalty-eu"
	if e3 := normalizeOne(t, body, o); sameID(e3.ID, e1.ID) {
		t.Error("another source got the same content key")
	}
	o = opts(OpenLoyalty)
	o.TypePrefix = "loyalty."
	if e4 := normalizeOne(t, body, o); !sameID(e4.ID, e1.ID) || e4.Type != "loyalty.customer.registered" {
		t.Errorf("prefix: id %s type %s; the key must not depend on the prefix", e4.ID, e4.Type)
	}
}

func TestLoyaltyBatch(t *testing.T) {
	body := readFixture(t, "openloyalty/batch/account.expiring_points_notification.json")
	evs, err := Normalize(body, opts(OpenLoyalty))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	var env struct {
		Data      []json.RawMessage `json:"data"`
		CreatedAt string            `json:"createdAt"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, ev := range evs {
		checkEvent(t, ev)
		ids[ev.ID] = true
		if want := "00000000-0000-474c-b092-b0dd880c07e" + string(rune('1'+i)); ev.Subject != want {
			t.Errorf("item %d subject = %q, want %q", i, ev.Subject, want)
		}
		if got := ev.Time.Format(time.RFC3339); got != "2021-12-14T14:16:54Z" {
			t.Errorf("item %d time = %s", i, got)
		}
		if compact(t, ev.Data) != compact(t, env.Data[i]) {
			t.Errorf("item %d data = %s", i, ev.Data)
		}
		if cap(ev.Data) != len(ev.Data) {
			t.Errorf("item %d data can grow into its neighbour", i)
		}
		// An item alone in a POST is the same notification: same key.
		single := []byte(`{"type":"account.expiring_points_notification","createdAt":"` + env.CreatedAt + `","data":` + string(env.Data[i]) + `}`)
		if one := normalizeOne(t, single, opts(OpenLoyalty)); !sameID(one.ID, ev.ID) {
			t.Errorf("item %d: id %s alone, %s in a batch", i, one.ID, ev.ID)
		}
	}
	if len(ids) != 3 {
		t.Errorf("ids are not distinct: %v", ids)
	}
	// Any loyalty type may batch.
	other := []byte(`{"type":"customer.updated","data":[{"customerId":"a"},{"transactionId":"b"},{"accountId":"c"},{}]}`)
	evs, err = Normalize(other, opts(Auto))
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, ev := range evs {
		checkEvent(t, ev)
		subjects = append(subjects, ev.Subject)
	}
	if !slices.Equal(subjects, []string{"a", "b", "c", ""}) {
		t.Errorf("subjects = %q", subjects)
	}
}

func TestLoyaltySubjectPriority(t *testing.T) {
	cases := map[string]string{
		`{"accountId":"c","transactionId":"b","customerId":"a"}`: "a",
		`{"accountId":"c","transactionId":"b"}`:                  "b",
		`{"accountId":"c","customerId":""}`:                      "c",
		`{"customerId":null,"accountId":17}`:                     "17",
		`{"customerId":{"id":"x"}}`:                              "",
		`{"data":{"customerId":"nested"}}`:                       "",
		`{"customerId":"has space"}`:                             "",
		`{"customerId":"` + strings.Repeat("x", 257) + `"}`:      "",
	}
	for data, want := range cases {
		ev := normalizeOne(t, []byte(`{"type":"x.y","data":`+data+`}`), opts(OpenLoyalty))
		if ev.Subject != want {
			t.Errorf("%s: subject = %q, want %q", data, ev.Subject, want)
		}
	}
}

func TestOptions(t *testing.T) {
	body := readFixture(t, "usaepay/transaction.sale.success.json")
	o := opts(USAePay)
	o.Source = "https://pay.example.com/hooks"
	o.TypePrefix = "com.usaepay."
	ev := normalizeOne(t, body, o)
	if ev.Source != o.Source || ev.Type != "com.usaepay.transaction.sale.success" {
		t.Errorf("source, type = %q, %q", ev.Source, ev.Type)
	}

	// A zero receive time means now.
	before := time.Now()
	ev = normalizeOne(t, readFixture(t, "openloyalty/customer.updated.json"), Options{})
	if ev.ReceivedAt.Before(before.Add(-time.Second)) || ev.ReceivedAt.Location() != time.UTC {
		t.Errorf("receivedat = %v", ev.ReceivedAt)
	}

	bad := []Options{
		{Provider: "stripe"},
		{Provider: "USAePay"},
		{Source: "has space"},
		{Source: `\windows`},
		{TypePrefix: "a b"},
		{TypePrefix: "bad\n"},
	}
	for _, o := range bad {
		_, err := Normalize(body, o)
		var ie *InputError
		if err == nil || errors.As(err, &ie) {
			t.Errorf("%+v: err = %v, want a configuration error", o, err)
		}
		if CheckOptions(o) == nil {
			t.Errorf("CheckOptions(%+v) = nil", o)
		}
	}
	if _, err := Normalize(body, Options{Provider: "stripe"}); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("unknown provider: %v", err)
	}
}

func TestDataIsACopy(t *testing.T) {
	body := readFixture(t, "usaepay/transaction.sale.success.json")
	ev := normalizeOne(t, body, opts(Auto))
	before := string(ev.Data)
	for i := range body {
		body[i] = 'x'
	}
	if string(ev.Data) != before {
		t.Error("event data aliases the request body")
	}
}

func TestDetect(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"type":"event","event_type":"x"}`, USAePay},
		{`{"event_id":"x"}`, USAePay},
		{`{"type":"event"}`, USAePay},
		{`{"webhook_event":"x"}`, Sublytics},
		{`{"type":"customer.updated"}`, OpenLoyalty},
		{`{"data":{}}`, OpenLoyalty},
		{`{"type":"event","data":{}}`, OpenLoyalty},
		{` {"TYPE":"x","Data":{}}`, ""}, // names match exactly
		{`{"webhook_type":"x","event_type":"y"}`, ""},
		{`[]`, ""},
	}
	for _, c := range cases {
		got, err := Detect([]byte(c.body))
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("Detect(%s) = %q, %v; want %q", c.body, got, err, c.want)
		}
		var ie *InputError
		if err != nil && !errors.As(err, &ie) {
			t.Errorf("Detect(%s) error is %T", c.body, err)
		}
	}
}
