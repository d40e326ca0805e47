package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// TestDataAsJSON covers every JSON kind and every map operation CEL has
// on event.data, whose objects are read lazily from the payload's bytes.
func TestDataAsJSON(t *testing.T) {
	ev := &schemas.Event{Type: "order_updated", Data: []byte(` {
		"order": {"id": "223827", "number": 223827, "total": 25.5, "is_test": false, "paid": true,
			"notes": null, "tags": ["vip", "eu"], "empty": {},
			"line_items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}],
			"na\u006De": "caf\u00e9 \"au lait\"", "dup": 1, "dup": 2},
		"big": 9007199254740993
	}`)}
	tests := []string{
		`event.data.order.id == "223827"`,
		`event.data.order.number == 223827`,
		`event.data.order.number == 223827.0`,
		`event.data.order.total > 25`,
		`event.data.order.is_test == false && event.data.order.paid`,
		`!event.data.order.is_test`,
		`event.data.order.notes == null`,
		`"vip" in event.data.order.tags && size(event.data.order.tags) == 2`,
		`event.data.order.tags[1] == "eu"`,
		`event.data.order.line_items.exists(i, i.sku == "SKU-2" && i.qty == 1)`,
		`event.data.order.line_items.map(i, i.qty).exists(q, q == 2)`,
		`event.data.order.name == "café \"au lait\""`, // an escaped key and an escaped string
		`event.data.order["name"].startsWith("caf")`,
		`event.data.order.dup == 2`, // the last of duplicates, as encoding/json
		`"id" in event.data.order && !("nope" in event.data.order)`,
		`has(event.data.order.id) && !has(event.data.order.nope)`,
		`size(event.data.order) == 11 && size(event.data.order.empty) == 0`,
		`event.data.order.exists(k, k == "line_items")`,
		`event.data.order.all(k, k.size() > 0)`,
		`event.data.order.line_items[0] == {"sku": "SKU-1", "qty": 2}`,
		`event.data.order.empty == {}`,
		`event.data.order != event.data.order.empty`,
		`event.data.order == event.data.order`,
		`event.data.?order.?id.orValue("") == "223827"`,
		`event.data.?order.?nope.orValue("x") == "x"`,
		`type(event.data.order) == map && type(event.data.order.tags) == list`,
		`type(event.data.order.number) == double && type(event.data.order.id) == string`,
		`event.data.big == 9007199254740992.0`, // beyond 2^53, a double
		`event.data.order[1] == 1 || true`,     // a non-string key: absent, and || forgives it
	}
	for _, src := range tests {
		f, err := Compile(Config{Expression: src})
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if ok, err := f.Match(ev); !ok || err != nil {
			t.Errorf("%s: got %v, %v", src, ok, err)
		}
	}
	for _, src := range []string{
		`event.data.order.nope == 1`,
		`event.data.order.id.nope == 1`,
		`event.data.order.tags[5] == "x"`,
		`event.data.order[1] == 1`,
	} {
		f := mustCompile(t, Config{Expression: src})
		if ok, err := f.Match(ev); ok || !errors.Is(err, ErrEval) {
			t.Errorf("%s: got %v, %v; want an evaluation error", src, ok, err)
		}
	}
}

func TestDataNotAnObject(t *testing.T) {
	for data, src := range map[string]string{
		`[]`:          `size(event.data) == 0`, // a provider encoding an empty map as []
		`[{"a": 1}]`:  `event.data[0].a == 1`,
		`"x"`:         `event.data == "x"`,
		`12`:          `event.data == 12`,
		``:            `event.data == null`,
		`  {"a":1}  `: `event.data.a == 1`,
	} {
		f := mustCompile(t, Config{Expression: src})
		if ok, err := f.Match(&schemas.Event{Data: []byte(data)}); !ok || err != nil {
			t.Errorf("data %q, %s: got %v, %v", data, src, ok, err)
		}
	}
}

// TestTruncatedDataNeverPanics reads every prefix of a real payload, data
// no schemas.Event holds: the scanner stays within bounds, so no
// evaluation ends in a panic (which cel-go would report as an internal
// error).
func TestTruncatedDataNeverPanics(t *testing.T) {
	ev := fixtureEvent(t, "usaepay/transaction.sale.voided.json", normalize.Options{})
	f := mustCompile(t, Config{Expression: `event.data.object.amount_detail.amount == "5.00" && size(event.data.object) > 0 && "key" in event.data.object`})
	if ok, err := f.Match(ev); !ok || err != nil {
		t.Fatalf("whole payload: %v, %v", ok, err)
	}
	data := []byte(ev.Data)
	for i := range len(data) {
		cut := *ev
		cut.Data = data[:i]
		if _, err := f.Match(&cut); err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
}
