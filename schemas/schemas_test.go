package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func goodEvent() Event {
	return Event{
		SpecVersion:     SpecVersion,
		ID:              "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
		Source:          "/usaepay",
		Type:            "transaction.sale.success",
		Subject:         "1nftvzx7xtcggm3",
		Time:            time.Date(2021, 4, 7, 15, 14, 26, 0, time.UTC),
		DataContentType: DataContentType,
		Data:            json.RawMessage(`{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":"1nftvzx7xtcggm3"}}`),
		Provider:        "usaepay",
		ReceivedAt:      time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC),
	}
}

func jsonValidator(t *testing.T) func([]byte) error {
	t.Helper()
	v, err := NewJSONSchemaValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAttributeNames(t *testing.T) {
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !ValidAttributeName(name) {
			t.Errorf("field %s: attribute name %q is not lowercase letters and digits", typ.Field(i).Name, name)
		}
	}
	for _, bad := range []string{"", "receivedAt", "data_base64", "a-b", "x12345678901234567890"} {
		if ValidAttributeName(bad) {
			t.Errorf("ValidAttributeName(%q) = true", bad)
		}
	}
}

// TestSchemaMatchesType keeps the JSON Schema and the Go type describing
// the same attributes.
func TestSchemaMatchesType(t *testing.T) {
	var doc struct {
		Schema     string                     `json:"$schema"`
		ID         string                     `json:"$id"`
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(CanonicalEventJSONSchema, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != "https://json-schema.org/draft/2020-12/schema" || doc.ID != CanonicalEventSchemaID {
		t.Errorf("$schema, $id = %q, %q", doc.Schema, doc.ID)
	}
	typ := reflect.TypeFor[Event]()
	var required []string
	for i := range typ.NumField() {
		name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if _, ok := doc.Properties[name]; !ok {
			t.Errorf("schema lacks property %q", name)
		}
		if opts != "omitempty" {
			required = append(required, name)
		}
	}
	if len(doc.Properties) != typ.NumField() {
		t.Errorf("schema has %d properties, Event %d fields", len(doc.Properties), typ.NumField())
	}
	slices.Sort(required)
	slices.Sort(doc.Required)
	if !slices.Equal(required, doc.Required) {
		t.Errorf("schema requires %v, Event %v", doc.Required, required)
	}
}

// tracedEvent is goodEvent as a traced route stores it: with the
// distributed tracing extension.
func tracedEvent() Event {
	ev := goodEvent()
	ev.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ev.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,spaced=a b"
	return ev
}

func TestTracedEventPassesBoth(t *testing.T) {
	ev := tracedEvent()
	if err := Validate(&ev); err != nil {
		t.Errorf("Validate: %v", err)
	}
	doc, _ := ev.AppendJSON(nil)
	if err := jsonValidator(t)(doc); err != nil {
		t.Errorf("JSON Schema: %v\n%s", err, doc)
	}
	if len(doc) > ev.EncodedSize() {
		t.Errorf("encoded %d bytes, EncodedSize said %d", len(doc), ev.EncodedSize())
	}
}

func TestGoodEventPassesBoth(t *testing.T) {
	ev := goodEvent()
	if err := Validate(&ev); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := Validate(ev); err != nil {
		t.Errorf("Validate by value: %v", err)
	}
	if err := Validate([]Event{ev, ev}); err != nil {
		t.Errorf("Validate slice: %v", err)
	}
	doc, _ := json.Marshal(ev)
	if err := jsonValidator(t)(doc); err != nil {
		t.Errorf("JSON Schema: %v\n%s", err, doc)
	}
	// Subject is optional; extensions with proper names are allowed.
	ev.Subject = ""
	doc, _ = json.Marshal(ev)
	var m map[string]any
	_ = json.Unmarshal(doc, &m)
	m["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	m["tracestate"] = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	m["otherext"] = "x"
	doc, _ = json.Marshal(m)
	if err := jsonValidator(t)(doc); err != nil {
		t.Errorf("JSON Schema with extension: %v", err)
	}
	if err := Validate(&ev); err != nil {
		t.Errorf("Validate without subject: %v", err)
	}
}

// TestBadEventsFailBoth changes one thing at a time; the validator tags
// and the JSON Schema must both refuse it.
func TestBadEventsFailBoth(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	if ny == nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	cases := []struct {
		name  string
		field string
		edit  func(*Event)
	}{
		{"specversion", "specversion", func(e *Event) { e.SpecVersion = "0.3" }},
		{"empty id", "id", func(e *Event) { e.ID = "" }},
		{"id with space", "id", func(e *Event) { e.ID = "a b" }},
		{"id non-ASCII", "id", func(e *Event) { e.ID = "é" }},
		{"long id", "id", func(e *Event) { e.ID = strings.Repeat("a", 257) }},
		{"empty source", "source", func(e *Event) { e.Source = "" }},
		{"source with space", "source", func(e *Event) { e.Source = "/a b" }},
		{"source with backslash", "source", func(e *Event) { e.Source = `\usaepay` }},
		{"source bad escape", "source", func(e *Event) { e.Source = "/a%zz" }},
		{"empty type", "type", func(e *Event) { e.Type = "" }},
		{"type with newline", "type", func(e *Event) { e.Type = "a\nb" }},
		{"long type", "type", func(e *Event) { e.Type = strings.Repeat("t", 513) }},
		{"subject with space", "subject", func(e *Event) { e.Subject = "a b" }},
		{"long subject", "subject", func(e *Event) { e.Subject = strings.Repeat("s", 257) }},
		{"time not UTC", "time", func(e *Event) { e.Time = e.Time.In(ny) }},
		{"zero time", "time", func(e *Event) { e.Time = time.Time{} }},
		{"receivedat not UTC", "receivedat", func(e *Event) { e.ReceivedAt = e.ReceivedAt.In(ny) }},
		{"datacontenttype", "datacontenttype", func(e *Event) { e.DataContentType = "text/plain" }},
		{"data string", "data", func(e *Event) { e.Data = json.RawMessage(`"x"`) }},
		{"data null", "data", func(e *Event) { e.Data = json.RawMessage(`null`) }},
		{"provider not a name", "provider", func(e *Event) { e.Provider = "USAePay" }},
		{"long provider", "provider", func(e *Event) { e.Provider = strings.Repeat("p", 21) }},
		{"empty provider", "provider", func(e *Event) { e.Provider = "" }},
		{"traceparent uppercase", "traceparent", func(e *Event) { e.TraceParent = "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01" }},
		{"traceparent short", "traceparent", func(e *Event) { e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01" }},
		{"traceparent zero trace", "traceparent", func(e *Event) { e.TraceParent = "00-" + strings.Repeat("0", 32) + "-b7ad6b7169203331-01" }},
		{"traceparent zero span", "traceparent", func(e *Event) {
			e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-" + strings.Repeat("0", 16) + "-01"
		}},
		{"tracestate with a tab", "tracestate", func(e *Event) { e.TraceState = "a=1,\tb=2" }},
		{"long tracestate", "tracestate", func(e *Event) { e.TraceState = "a=" + strings.Repeat("x", 511) }},
	}
	validate := jsonValidator(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := goodEvent()
			c.edit(&ev)
			err := Validate(&ev)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if ve.Problems[0].Field != c.field {
				t.Errorf("problem %v, want field %q", ve.Problems, c.field)
			}
			doc, merr := json.Marshal(ev)
			if merr != nil {
				return // not even encodable: nothing reaches a backend
			}
			if err := validate(doc); err == nil {
				t.Errorf("JSON Schema accepted %s", doc)
			}
		})
	}
	// Only the JSON form can carry a badly named or typed extension.
	doc, _ := json.Marshal(goodEvent())
	for _, ext := range []string{`"Provider2":"x"`, `"trace_id":"x"`, `"extra":{"a":1}`, `"ratio":1.5`} {
		bad := strings.Replace(string(doc), `{`, `{`+ext+`,`, 1)
		if err := validate([]byte(bad)); err == nil {
			t.Errorf("JSON Schema accepted extension %s", ext)
		}
	}
	for _, tm := range []string{"0000-01-01T00:00:00Z", "2021-04-07T15:14:26+00:00", "2021-04-07 15:14:26Z"} {
		bad := strings.Replace(string(doc), "2021-04-07T15:14:26Z", tm, 1)
		if err := validate([]byte(bad)); err == nil {
			t.Errorf("JSON Schema accepted time %s", tm)
		}
	}
	if err := validate([]byte(`{`)); err == nil {
		t.Error("JSON Schema validator accepted malformed JSON")
	}
}

// envelope uses every tag the providers' envelopes use (see normalize).
type envelope struct {
	Type  string          `json:"type" validate:"required,eq=event"`
	Name  string          `json:"name" validate:"required,max=256,token"`
	When  string          `json:"when" validate:"providertime"`
	At    string          `json:"at,omitempty" validate:"omitempty,rfc3339"`
	ID    string          `json:"id" validate:"required,hex64"`
	Num   FlexibleID      `json:"num,omitempty" validate:"omitempty,max=256,visibleascii"`
	Body  json.RawMessage `json:"body" validate:"required,jsoncontainer"`
	Items json.RawMessage `json:"items,omitempty" validate:"omitempty,objects"`
}

func goodEnvelope() envelope {
	return envelope{Type: "event", Name: "x", When: "2021-04-07 15:14:26", ID: strings.Repeat("aF", 32), Body: json.RawMessage(` {}`)}
}

func TestTagMessages(t *testing.T) {
	cases := []struct {
		edit func(*envelope)
		want string
	}{
		{func(e *envelope) { e.ID = "abc" }, "id: must be 64 hex characters"},
		{func(e *envelope) { e.Type = "evt" }, `type: must be "event"`},
		{func(e *envelope) { e.When = "2021-04-07T15:14:26" },
			`when: must be "YYYY-MM-DD hh:mm:ss" (or "0000-00-00 00:00:00" for none), got "2021-04-07T15:14:26"`},
		{func(e *envelope) { e.Body = json.RawMessage(`"x"`) }, "body: must be a JSON object or array"},
		{func(e *envelope) { e.Name = "" }, "name: must not be empty"},
		{func(e *envelope) { e.Name = "a b" }, "name: must not contain spaces or control characters"},
		{func(e *envelope) { e.Items = json.RawMessage(`[]`) }, "items: must be a JSON object or a non-empty array of objects"},
		{func(e *envelope) { e.Items = json.RawMessage(`[{}, 1]`) }, "items: must be a JSON object or a non-empty array of objects"},
		{func(e *envelope) { e.At = "yesterday" },
			`at: must be an RFC 3339 date-time with offset, like "2020-09-24T14:09:13+02:00", got "yesterday"`},
		{func(e *envelope) { e.Num = "a b" }, "num: must contain only visible ASCII characters (no spaces or control characters)"},
	}
	for _, c := range cases {
		e := goodEnvelope()
		c.edit(&e)
		err := Validate(&e)
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v:\n got %v\nwant %s", e, err, c.want)
		}
	}
	good := []func(*envelope){
		func(*envelope) {},
		func(e *envelope) { e.When = ZeroProviderTime },
		func(e *envelope) { e.When = "" },
		func(e *envelope) { e.Items = json.RawMessage(`[{"a":"]"}, {}]`); e.At = "2020-09-24T14:09:13+02:00" },
		func(e *envelope) { e.Items = json.RawMessage(`{}`); e.Body = json.RawMessage(`[]`); e.Num = "4806" },
	}
	for _, edit := range good {
		e := goodEnvelope()
		edit(&e)
		if err := Validate(&e); err != nil {
			t.Errorf("%+v: %v", e, err)
		}
	}
	if err := Validate((*Event)(nil)); err == nil {
		t.Error("nil pointer accepted")
	}
	if err := Validate(42); err == nil {
		t.Error("int accepted")
	}
	// A slice reports the index of the bad element.
	bad := goodEvent()
	bad.ID = ""
	err := Validate([]Event{goodEvent(), bad})
	if err == nil || err.Error() != "[1].id: must not be empty" {
		t.Errorf("slice: %v", err)
	}
}

func TestFlexibleIDDecodes(t *testing.T) {
	var v struct {
		ID FlexibleID `json:"id" validate:"required,max=256,visibleascii"`
	}
	if err := json.Unmarshal([]byte(`{"id":10001}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != "10001" {
		t.Errorf("id = %q", v.ID)
	}
	if err := Validate(&v); err != nil {
		t.Error(err)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"id":"10001"}` {
		t.Errorf("marshal: %s", out)
	}
}

// TestProviderList: with a list of providers the JSON Schema validator
// also holds the provider attribute to it.
func TestProviderList(t *testing.T) {
	doc, _ := json.Marshal(goodEvent())
	v, err := NewJSONSchemaValidator("openloyalty", "usaepay")
	if err != nil {
		t.Fatal(err)
	}
	if err := v(doc); err != nil {
		t.Errorf("listed provider refused: %v", err)
	}
	other := strings.Replace(string(doc), `"provider":"usaepay"`, `"provider":"stripe"`, 1)
	if err := v([]byte(other)); err == nil || !strings.Contains(err.Error(), `provider "stripe" is not one of openloyalty, usaepay`) {
		t.Errorf("unlisted provider: %v", err)
	}
	if err := jsonValidator(t)([]byte(other)); err != nil {
		t.Errorf("without a list, a well-formed provider name is refused: %v", err)
	}
	if err := v([]byte(`[]`)); err == nil {
		t.Error("an array passed")
	}
}

func TestFlexibleID(t *testing.T) {
	ok := map[string]FlexibleID{`"4806"`: "4806", `10001`: "10001", `0`: "0", ` 7 `: "7", `"a\"b"`: `a"b`, `""`: ""}
	for in, want := range ok {
		var f FlexibleID
		if err := f.UnmarshalJSON([]byte(in)); err != nil || f != want {
			t.Errorf("%s: %q, %v", in, f, err)
		}
	}
	for _, in := range []string{`1.5`, `-1`, `1e3`, `01`, `true`, `null`, `{}`, `[]`, ``, `"unterminated`} {
		var f FlexibleID
		if err := f.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s accepted as %q", in, f)
		}
	}
}

func TestParseTimes(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	cases := []struct {
		in   string
		loc  *time.Location
		want string // "" means absent
		bad  bool
	}{
		{"2021-04-07 15:14:26", nil, "2021-04-07T15:14:26Z", false},
		{"2021-04-07 15:14:26", ny, "2021-04-07T19:14:26Z", false},
		{"2021-12-07 15:14:26", ny, "2021-12-07T20:14:26Z", false},
		{ZeroProviderTime, ny, "", false},
		{"", nil, "", false},
		{"2021-04-07T15:14:26", nil, "", true},
		{"2021-04-07 15:14", nil, "", true},
		{"9999-12-31 23:00:00", ny, "", true}, // year 10000 in UTC
	}
	for _, c := range cases {
		got, ok, err := ParseProviderTime(c.in, c.loc)
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%q accepted: %v", c.in, got)
			}
		case err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.want == "" && ok:
			t.Errorf("%q: got %v, want absent", c.in, got)
		case c.want != "" && (got.Format(time.RFC3339) != c.want || got.Location() != time.UTC):
			t.Errorf("%q: got %v, want %s", c.in, got, c.want)
		}
	}
	if got, err := ParseRFC3339("2020-09-24T14:09:13+02:00"); err != nil || got.Format(time.RFC3339) != "2020-09-24T12:09:13Z" {
		t.Errorf("ParseRFC3339: %v %v", got, err)
	}
	for _, bad := range []string{"2020-09-24T14:09:13", "2020-09-24", "0000-01-01T00:00:00+01:00"} {
		if _, err := ParseRFC3339(bad); err == nil {
			t.Errorf("ParseRFC3339(%q) accepted", bad)
		}
	}
}

func TestURIReference(t *testing.T) {
	for _, s := range []string{"/usaepay", "https://example.com/hooks?x=1", "urn:webhook:loyalty", "loyalty", "//host/path", "http://[::1]/x"} {
		if !IsURIReference(s) {
			t.Errorf("IsURIReference(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", `\x`, "/a%zz", "http://::1/x", "\x00", "a\tb"} {
		if IsURIReference(s) {
			t.Errorf("IsURIReference(%q) = true", s)
		}
	}
}

// The shared validator is used from many request goroutines at once.
func TestValidateConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				ev := goodEvent()
				if i%2 == 1 {
					ev.ID = ""
					if Validate(&ev) == nil {
						t.Error("bad event passed")
					}
					continue
				}
				if err := Validate(&ev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// plainEvent has Event's fields and tags but not its methods: encoding/json
// encodes it by reflection, as it encoded Event before AppendJSON.
type plainEvent Event

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	noSubject := goodEvent()
	noSubject.Subject = ""
	odd := goodEvent()
	odd.ID = `a"b\c<d>&é` + "\u2028\x01"
	odd.Time = time.Date(2021, 4, 7, 15, 14, 26, 5, time.UTC)
	traced := tracedEvent()
	for name, ev := range map[string]Event{"good": goodEvent(), "no subject": noSubject, "escapes": odd, "traced": traced} {
		got, err := ev.AppendJSON([]byte("prefix:"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := json.Marshal((*plainEvent)(&ev))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "prefix:"+string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got[len("prefix:"):], want)
		}
		viaMarshal, err := json.Marshal(&ev)
		if err != nil || string(viaMarshal) != string(want) {
			t.Errorf("%s: json.Marshal = %s, %v", name, viaMarshal, err)
		}
	}

	// Data is copied as it is: laid out differently, the same document.
	spaced := goodEvent()
	spaced.Data = json.RawMessage("{\n  \"a\": [1, 2],\n  \"b\": \"<x>\"\n}")
	got, err := spaced.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal((*plainEvent)(&spaced))
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("AppendJSON wrote invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil || !reflect.DeepEqual(g, w) {
		t.Fatalf("AppendJSON and encoding/json disagree:\n%s\n%s", got, want)
	}
	if err := jsonValidator(t)(got); err != nil {
		t.Fatalf("schema: %v", err)
	}

	bad := goodEvent()
	bad.Data = json.RawMessage(`{"a":`)
	if _, err := json.Marshal(&bad); err == nil {
		t.Fatal("MarshalJSON accepted data that is not JSON")
	}
	null := goodEvent()
	null.Data = nil
	gotNull, err := json.Marshal(&null)
	wantNull, _ := json.Marshal((*plainEvent)(&null))
	if err != nil || string(gotNull) != string(wantNull) {
		t.Fatalf("nil data: %s %v, want %s", gotNull, err, wantNull)
	}
}

func TestEncodedSize(t *testing.T) {
	e := goodEvent()
	e.ProviderEventID = "4806"
	e.Time = time.Date(2021, 4, 7, 15, 14, 26, 123456789, time.UTC)
	b, err := e.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.EncodedSize(); got < len(b) || got > len(b)+64 {
		t.Errorf("EncodedSize = %d, encoded %d bytes", got, len(b))
	}
}
