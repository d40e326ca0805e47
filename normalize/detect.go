package normalize

import (
	"bytes"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// field indexes the top-level envelope members of all three providers.
type field int

const (
	fType field = iota
	fData
	fCreatedAt
	fWebhookType
	fWebhookEvent
	fWebhookEventID
	fWebhookEventDate
	fWebhookData
	fEventType
	fEventTriggered
	fEventID
	fEventBody
	nFields
)

var fieldNames = [nFields]string{
	fType:             "type",
	fData:             "data",
	fCreatedAt:        "createdAt",
	fWebhookType:      "webhook_type",
	fWebhookEvent:     "webhook_event",
	fWebhookEventID:   "webhook_event_id",
	fWebhookEventDate: "webhook_event_date",
	fWebhookData:      "webhook_data",
	fEventType:        "event_type",
	fEventTriggered:   "event_triggered",
	fEventID:          "event_id",
	fEventBody:        "event_body",
}

func lookupField(name string) (field, bool) {
	switch name {
	case "type":
		return fType, true
	case "data":
		return fData, true
	case "createdAt":
		return fCreatedAt, true
	case "webhook_type":
		return fWebhookType, true
	case "webhook_event":
		return fWebhookEvent, true
	case "webhook_event_id":
		return fWebhookEventID, true
	case "webhook_event_date":
		return fWebhookEventDate, true
	case "webhook_data":
		return fWebhookData, true
	case "event_type":
		return fEventType, true
	case "event_triggered":
		return fEventTriggered, true
	case "event_id":
		return fEventID, true
	case "event_body":
		return fEventBody, true
	}
	return 0, false
}

// envelope holds the raw top-level members the normalizers read, as
// sub-slices of body. Names match exactly (unlike encoding/json's
// case-insensitive struct matching) and, as in encoding/json, the last of
// duplicate members wins. Other members are ignored.
type envelope struct {
	body []byte
	val  [nFields][]byte
	off  [nFields]int
}

func (e *envelope) has(f field) bool { return e.val[f] != nil }

// parseEnvelope checks that body is a UTF-8 JSON object and indexes its
// top-level members.
func parseEnvelope(body []byte, env *envelope) *InputError {
	if !validJSON(body) {
		return syntaxError(body)
	}
	if off := notUTF8(body); off >= 0 {
		e := &InputError{Kind: KindSyntax, Reason: "byte is not UTF-8; JSON must be UTF-8"}
		e.locate(body, off)
		return e
	}
	start := jsonscan.SkipWS(body, 0)
	if body[start] != '{' {
		return envelopeErr("", body, start, "body must be a JSON object, got "+jsonKind(body[start:]))
	}
	env.body = body
	it := newObjIter(body[start:])
	for {
		k, v, off, ok := it.next()
		if !ok {
			return nil
		}
		inner := k[1 : len(k)-1]
		f, known := lookupField(string(inner))
		if !known && bytes.IndexByte(inner, '\\') >= 0 {
			if s, ok := decodeString(k); ok {
				f, known = lookupField(s)
			}
		}
		if known {
			env.val[f] = v
			env.off[f] = start + off
		}
	}
}

var (
	sublyticsFields = []field{fWebhookType, fWebhookEvent, fWebhookEventID, fWebhookEventDate, fWebhookData}
	usaepayFields   = []field{fEventType, fEventTriggered, fEventID, fEventBody}
)

// expected says, per provider, which fields its envelope has.
var expected = map[string]string{
	OpenLoyalty: `type, data and optionally createdAt`,
	Sublytics:   `webhook_type, webhook_event, webhook_event_id, webhook_event_date and webhook_data`,
	USAePay:     `type ("event"), event_type, event_triggered, event_id and event_body`,
}

const noEnvelope = `body matches no known envelope: expected the fields of openloyalty (type, data), ` +
	`sublytics (webhook_type, webhook_event, webhook_event_id, webhook_event_date, webhook_data) ` +
	`or usaepay (type "event", event_type, event_triggered, event_id, event_body)`

// detect names the provider whose envelope env looks like. Each provider's
// own member names decide: webhook_* is Sublytics, event_* is USAePay, and
// data or createdAt (or a type other than "event") is the loyalty platform.
// mixed reports members of both Sublytics and USAePay.
func detect(env *envelope) (provider string, mixed bool) {
	sub, usa := false, false
	for _, f := range sublyticsFields {
		sub = sub || env.has(f)
	}
	for _, f := range usaepayFields {
		usa = usa || env.has(f)
	}
	switch {
	case sub && usa:
		return "", true
	case sub:
		return Sublytics, false
	case usa:
		return USAePay, false
	case env.has(fData) || env.has(fCreatedAt):
		return OpenLoyalty, false
	case env.has(fType):
		if s, ok := decodeString(env.val[fType]); ok && s == "event" {
			return USAePay, false
		}
		return OpenLoyalty, false
	}
	return "", false
}

// resolve picks the provider to read env as, given the route's setting.
func resolve(env *envelope, want string) (string, *InputError) {
	got, mixed := detect(env)
	if want == Auto {
		switch {
		case mixed:
			return "", envelopeErr("", env.body, -1, "body mixes the sublytics (webhook_*) and usaepay (event_*) envelopes; expected one of them")
		case got == "":
			return "", envelopeErr("", env.body, -1, noEnvelope)
		}
		return got, nil
	}
	switch {
	case got == want || mixed:
		// A mixed body is read as the configured provider; its own
		// required fields decide.
		return want, nil
	case got == "":
		return "", envelopeErr(want, env.body, -1, "body is not the "+want+" envelope: expected "+expected[want])
	}
	return "", envelopeErr(want, env.body, -1, "body is not the "+want+" envelope (it looks like "+got+"): expected "+expected[want])
}

// Detect reports which provider's envelope body is, from its top-level
// member names alone (the values are not checked: Normalize does that). The
// error is an *InputError when body is not a JSON object or matches no
// envelope. Normalize with Provider Auto does the same detection; Detect is
// for callers that need the provider before normalizing, e.g. to pick
// verification settings.
func Detect(body []byte) (string, error) {
	var env envelope
	if err := parseEnvelope(body, &env); err != nil {
		return "", err
	}
	p, err := resolve(&env, Auto)
	if err != nil {
		return "", err
	}
	return p, nil
}
