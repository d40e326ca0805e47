package normalize

import (
	"errors"
	"strings"
	"testing"
)

// The seed documents' typos, verbatim: a trailing comma, a missing comma,
// curly quotes, and the line numbers and comments of the Sublytics page.
const (
	seedTrailingComma = "{\n   \"type\": \"customer.level_changed_automatically\",\n   \"data\": {\n       \"customerId\": \"32c764d9-ddd5-401f-ac13-a7fcba0982ff\",\n       \"levelId\": \"e82c96cf-32a3-43bd-9034-4df343e51111\",\n       \"levelName\": \"level1\",\n       \"levelMove\": \"up\",\n             \"levelAchievementDate\": \"2019-08-09T14:08:28+02:00\",\n   }\n}"
	seedMissingComma  = "{\n   \"type\": \"account.expiring_points_notification\"\n   \"createdAt\": \"2021-12-14T14:16:54+00:00\",\n   \"data\": {\n          \"customerId\": \"00000000-0000-474c-b092-b0dd880c07e1\"\n   }\n}"
	seedCurlyValue    = "{\n   \"type\": \"transaction.registered\",\n   \"data\": {\n       \"address2\": “3”,\n       \"postal\": \"41-222\"\n   }\n}"
	seedCurlyClose    = "{\n   \"type\": \"account.available_points_amount_changed\",\n   \"data\": {\n       \"amountChangeType\": \"add”,\n       \"pointsTransferId\": \"e82c96cf-32a3-43bd-9034-4df343e5f333\"\n   }\n}"
	seedComments      = "1{\n2    \"webhook_type\": \"order\", // the webhook object type\n3}"
	seedUnnumbered    = "{\n    \"webhook_type\": \"order\", // the webhook object type\n}"
)

const usaepayOK = `{"type":"event","event_triggered":"2021-04-07 15:14:26","event_type":"transaction.sale.success",` +
	`"event_body":{"object":{"key":"k"}},"event_id":"c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"}`

const sublyticsOK = `{"webhook_type":"order","webhook_event":"order_updated","webhook_event_id":"4806",` +
	`"webhook_event_date":"2021-03-19 18:38:40","webhook_data":{"order":{"id":"1"}}}`

type errCase struct {
	name, provider, body string
	want                 string    // exact Error()
	kind                 ErrorKind // expected Kind
	field                string
	at                   string // the body at Offset starts with this; "" for Offset -1
}

func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("test body lacks " + old)
	}
	return strings.Replace(s, old, new, 1)
}

func errCases(_ testing.TB) []errCase {
	return []errCase{
		// Not JSON.
		{"empty", Auto, "", "invalid JSON at byte offset 0 (line 1, column 1): empty body; expected a JSON object", KindSyntax, "", ""},
		{"whitespace", Auto, " \n", "invalid JSON at byte offset 2 (line 2, column 1): body is only whitespace; expected a JSON object", KindSyntax, "", ""},
		{"seed trailing comma", Auto, seedTrailingComma,
			"invalid JSON at byte offset 310 (line 9, column 4): unexpected '}': expected a quoted member name (trailing comma before '}'?)", KindSyntax, "", "}\n}"},
		{"seed missing comma", Auto, seedMissingComma,
			"invalid JSON at byte offset 55 (line 3, column 4): unexpected '\"': expected ',' or '}' after an object member (missing comma?)", KindSyntax, "", `"createdAt"`},
		{"seed curly quotes around a value", Auto, seedCurlyValue,
			"invalid JSON at byte offset 71 (line 4, column 20): unexpected '“' (U+201C): expected a JSON value; JSON strings need straight double quotes (\")", KindSyntax, "", "“3”"},
		{"seed curly closing quote", Auto, seedCurlyClose,
			"invalid JSON at byte offset 104 (line 4, column 34): unexpected newline: control characters must be escaped inside a string (the string was not closed: '”' is not a JSON quote)", KindSyntax, "", "\n"},
		{"seed line numbers", Auto, seedComments,
			"invalid JSON at byte offset 1 (line 1, column 2): unexpected '{': extra data after the JSON value", KindSyntax, "", "{"},
		{"seed comment", Auto, seedUnnumbered,
			"invalid JSON at byte offset 31 (line 2, column 30): unexpected '/': expected a quoted member name; JSON has no comments", KindSyntax, "", "// the"},
		{"trailing data", Auto, usaepayOK + "\n{}",
			"invalid JSON at byte offset 211 (line 2, column 1): unexpected '{': extra data after the JSON value", KindSyntax, "", "{}"},
		{"truncated", Auto, `{"type":"event","event_body":{"object":{`,
			"invalid JSON at byte offset 40 (line 1, column 41): unexpected end of input: an object is not closed", KindSyntax, "", ""},
		{"truncated string", Auto, `{"type":"ev`,
			"invalid JSON at byte offset 11 (line 1, column 12): unexpected end of input: a string is not closed", KindSyntax, "", ""},
		{"single quotes", Auto, `{'type': 'event'}`,
			"invalid JSON at byte offset 1 (line 1, column 2): unexpected ''': expected a quoted member name; JSON strings need double quotes (\")", KindSyntax, "", "'type'"},
		{"byte order mark", Auto, "\ufeff{}",
			"invalid JSON at byte offset 0 (line 1, column 1): unexpected byte order mark U+FEFF: expected a JSON value; remove the byte order mark", KindSyntax, "", "\ufeff"},
		{"bad escape", Auto, `{"type":"a\qb"}`,
			"invalid JSON at byte offset 11 (line 1, column 12): unexpected 'q': invalid escape sequence in a string", KindSyntax, "", "qb"},
		{"bad number", Auto, `{"type":"x","data":{"n":01}}`,
			"invalid JSON at byte offset 25 (line 1, column 26): unexpected '1': expected ',' or '}' after an object member", KindSyntax, "", "1}}"},
		{"bad literal", Auto, `{"type":"x","data":{"n":nul}}`,
			"invalid JSON at byte offset 27 (line 1, column 28): unexpected '}': expected true, false or null", KindSyntax, "", "}}"},
		{"not UTF-8", Auto, "{\"type\":\"x\",\"data\":{\"n\":\"\xff\"}}",
			"invalid JSON at byte offset 25 (line 1, column 26): byte is not UTF-8; JSON must be UTF-8", KindSyntax, "", "\xff"},
		{"binary", Auto, "\x00\x01",
			"invalid JSON at byte offset 0 (line 1, column 1): unexpected control character U+0000: expected a JSON value", KindSyntax, "", "\x00"},

		// JSON, but no envelope.
		{"array", Auto, ` [{"type":"event"}]`, "body must be a JSON object, got array", KindEnvelope, "", "["},
		{"string", Auto, `"hello"`, "body must be a JSON object, got string", KindEnvelope, "", `"hello"`},
		{"null", USAePay, `null`, "body must be a JSON object, got null", KindEnvelope, "", "null"},
		{"no envelope", Auto, `{"event":"x","payload":{}}`, noEnvelope(), KindEnvelope, "", ""},
		{"empty object", Auto, `{}`, noEnvelope(), KindEnvelope, "", ""},
		{"case differs", Auto, `{"Type":"x","Data":{}}`, noEnvelope(), KindEnvelope, "", ""},
		{"mixed", Auto, `{"webhook_type":"order","event_id":"x"}`,
			"body mixes the sublytics and usaepay envelopes; expected one of them", KindEnvelope, "", ""},
		{"usaepay route, sublytics body", USAePay, sublyticsOK,
			`body is not the usaepay envelope (it looks like sublytics): expected type ("event"), event_type, event_triggered, event_id and event_body`, KindEnvelope, "", ""},
		{"sublytics route, loyalty body", Sublytics, `{"type":"customer.updated","data":{}}`,
			"body is not the sublytics envelope (it looks like openloyalty): expected webhook_type, webhook_event, webhook_event_id, webhook_event_date and webhook_data", KindEnvelope, "", ""},
		{"loyalty route, usaepay body", OpenLoyalty, usaepayOK,
			"body is not the openloyalty envelope (it looks like usaepay): expected type, data and optionally createdAt", KindEnvelope, "", ""},
		{"usaepay route, unknown body", USAePay, `{"hello":1}`,
			`body is not the usaepay envelope: expected type ("event"), event_type, event_triggered, event_id and event_body`, KindEnvelope, "", ""},

		// USAePay fields.
		{"event_id short", Auto, replace(usaepayOK, "5853705dfd", "5853705df"), "event_id: must be 64 hex characters", KindField, "event_id", `"c088`},
		{"event_id not hex", Auto, replace(usaepayOK, "5853705dfd", "5853705dfz"), "event_id: must be 64 hex characters", KindField, "event_id", `"c088`},
		{"event_id number", Auto, replace(usaepayOK, `"c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"`, "123"),
			"event_id: must be a string, got number", KindField, "event_id", "123"},
		{"event_id missing", USAePay, replace(usaepayOK, `,"event_id":"c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"`, ""),
			"event_id: is required", KindField, "event_id", ""},
		{"event_body missing", USAePay, replace(usaepayOK, `"event_body":{"object":{"key":"k"}},`, ""), "event_body: is required", KindField, "event_body", ""},
		{"event_body string", USAePay, replace(usaepayOK, `{"object":{"key":"k"}}`, `"x"`), "event_body: must be a JSON object, got string", KindField, "event_body", `"x"`},
		{"type not event", USAePay, replace(usaepayOK, `"type":"event"`, `"type":"evt"`), `type: must be "event"`, KindField, "type", `"evt"`},
		{"event_type empty", USAePay, replace(usaepayOK, `"transaction.sale.success"`, `""`), "event_type: must not be empty", KindField, "event_type", `""`},
		{"event_type space", USAePay, replace(usaepayOK, `"transaction.sale.success"`, `"sale success"`),
			"event_type: must not contain spaces or control characters", KindField, "event_type", `"sale success"`},
		{"event_type null", USAePay, replace(usaepayOK, `"transaction.sale.success"`, `null`), "event_type: must be a string, got null", KindField, "event_type", "null"},
		{"event_triggered RFC 3339", USAePay, replace(usaepayOK, `"2021-04-07 15:14:26"`, `"2021-04-07T15:14:26Z"`),
			`event_triggered: must be "YYYY-MM-DD hh:mm:ss" (or "0000-00-00 00:00:00" for none), got "2021-04-07T15:14:26Z"`, KindField, "event_triggered", `"2021-04-07T15:14:26Z"`},
		{"event_triggered impossible date", USAePay, replace(usaepayOK, `"2021-04-07 15:14:26"`, `"2021-02-30 15:14:26"`),
			`event_triggered: must be "YYYY-MM-DD hh:mm:ss" (or "0000-00-00 00:00:00" for none), got "2021-02-30 15:14:26"`, KindField, "event_triggered", `"2021-02-30`},
		{"event_triggered missing", USAePay, replace(usaepayOK, `"event_triggered":"2021-04-07 15:14:26",`, ""),
			"event_triggered: is required", KindField, "event_triggered", ""},

		// Sublytics fields.
		{"webhook_event_id fraction", Auto, replace(sublyticsOK, `"4806"`, `48.06`),
			"webhook_event_id: must be a string or a non-negative integer, got number 48.06", KindField, "webhook_event_id", "48.06"},
		{"webhook_event_id negative", Auto, replace(sublyticsOK, `"4806"`, `-4806`),
			"webhook_event_id: must be a string or a non-negative integer, got number -4806", KindField, "webhook_event_id", "-4806"},
		{"webhook_event_id exponent", Auto, replace(sublyticsOK, `"4806"`, `4.806e3`),
			"webhook_event_id: must be a string or a non-negative integer, got number 4.806e3", KindField, "webhook_event_id", "4.806e3"},
		{"webhook_event_id boolean", Auto, replace(sublyticsOK, `"4806"`, `true`),
			"webhook_event_id: must be a string or a non-negative integer, got boolean", KindField, "webhook_event_id", "true"},
		{"webhook_event_id empty", Auto, replace(sublyticsOK, `"4806"`, `""`), "webhook_event_id: must not be empty", KindField, "webhook_event_id", `""`},
		{"webhook_event_id space", Auto, replace(sublyticsOK, `"4806"`, `"48 06"`),
			"webhook_event_id: must contain only visible ASCII characters (no spaces or control characters)", KindField, "webhook_event_id", `"48 06"`},
		{"webhook_event_id too long", Auto, replace(sublyticsOK, `"4806"`, `"`+strings.Repeat("9", 257)+`"`),
			"webhook_event_id: must be at most 256 characters", KindField, "webhook_event_id", `"999`},
		{"webhook_data scalar", Auto, replace(sublyticsOK, `{"order":{"id":"1"}}`, `42`),
			"webhook_data: must be a JSON object, got number", KindField, "webhook_data", "42"},
		{"webhook_event_date missing", Auto, replace(sublyticsOK, `"webhook_event_date":"2021-03-19 18:38:40",`, ""),
			"webhook_event_date: is required", KindField, "webhook_event_date", ""},
		{"webhook_event_date number", Auto, replace(sublyticsOK, `"2021-03-19 18:38:40"`, `1616179120`),
			"webhook_event_date: must be a string, got number", KindField, "webhook_event_date", "1616179120"},
		{"webhook_type missing", Auto, replace(sublyticsOK, `"webhook_type":"order",`, ""), "webhook_type: is required", KindField, "webhook_type", ""},

		// Loyalty fields.
		{"loyalty data missing", OpenLoyalty, `{"type":"customer.updated"}`, "data: is required", KindField, "data", ""},
		{"loyalty data null", Auto, `{"type":"customer.updated","data":null}`,
			"data: must be a JSON object or an array of objects, got null", KindField, "data", "null"},
		{"loyalty empty batch", Auto, `{"type":"account.expiring_points_notification","data":[ ]}`,
			"data: must not be an empty array", KindField, "data", "[ ]"},
		{"loyalty batch item", Auto, `{"type":"account.expiring_points_notification","data":[{"customerId":"a"}, "b"]}`,
			"data[1]: must be a JSON object, got string", KindField, "data[1]", `"b"`},
		{"loyalty type missing", OpenLoyalty, `{"data":{}}`, "type: is required", KindField, "type", ""},
		{"loyalty type number", Auto, `{"type":7,"data":{}}`, "type: must be a string, got number", KindField, "type", "7"},
		{"loyalty type too long", Auto, `{"type":"` + strings.Repeat("t", 257) + `","data":{}}`,
			"type: must be at most 256 characters", KindField, "type", `"ttt`},
		{"loyalty createdAt no offset", Auto, `{"type":"x","createdAt":"2020-09-24T14:09:13","data":{}}`,
			`createdAt: must be an RFC 3339 date-time with offset, like "2020-09-24T14:09:13+02:00", got "2020-09-24T14:09:13"`, KindField, "createdAt", `"2020`},
		{"loyalty createdAt number", Auto, `{"type":"x","createdAt":1600956553,"data":{}}`,
			"createdAt: must be a string, got number", KindField, "createdAt", "1600956553"},
		{"loyalty createdAt out of range", Auto, `{"type":"x","createdAt":"9999-12-31T23:59:59-10:00","data":{}}`,
			"createdAt: time out of range (years 0001 to 9999 in UTC)", KindField, "createdAt", `"9999`},
	}
}

func TestInputErrors(t *testing.T) {
	for _, c := range errCases(t) {
		t.Run(c.name, func(t *testing.T) {
			evs, err := Normalize([]byte(c.body), Options{Provider: c.provider, ReceivedAt: received})
			if err == nil {
				t.Fatalf("no error; events %+v", evs)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InputError", err, err)
			}
			if got := err.Error(); got != c.want {
				t.Errorf("message\n got: %s\nwant: %s", got, c.want)
			}
			if ie.Kind != c.kind || ie.Field != c.field {
				t.Errorf("kind, field = %s, %q; want %s, %q", ie.Kind, ie.Field, c.kind, c.field)
			}
			switch {
			case c.at == "" && c.kind != KindSyntax && ie.Offset != -1 && c.kind != KindEnvelope:
				t.Errorf("offset = %d, want -1", ie.Offset)
			case c.at != "" && (ie.Offset < 0 || !strings.HasPrefix(c.body[ie.Offset:], c.at)):
				t.Errorf("offset %d does not point at %q", ie.Offset, c.at)
			}
			if ie.Offset >= 0 && (ie.Line < 1 || ie.Column < 1) {
				t.Errorf("line, column = %d, %d", ie.Line, ie.Column)
			}
		})
	}
}

// A mixed body on a route with a fixed provider is read as that provider:
// the extra members are ignored.
func TestMixedBodyOnFixedRoute(t *testing.T) {
	body := replace(usaepayOK, `"type":"event"`, `"type":"event","webhook_type":"order"`)
	if _, err := Normalize([]byte(body), opts(USAePay)); err != nil {
		t.Errorf("usaepay route: %v", err)
	}
	if _, err := Normalize([]byte(body), opts(Auto)); err == nil {
		t.Error("auto route accepted a mixed body")
	}
}

func TestTimeOutOfRangeAfterZone(t *testing.T) {
	body := replace(usaepayOK, `"2021-04-07 15:14:26"`, `"0001-01-01 00:00:00"`)
	o := opts(USAePay)
	o.Location = timeZone(t, "Asia/Tokyo")
	_, err := Normalize([]byte(body), o)
	if err == nil || err.Error() != "event_triggered: time out of range (years 0001 to 9999 in UTC)" {
		t.Errorf("err = %v", err)
	}
}
