package handlers

import (
	"encoding/json"
	"testing"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/filter"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func mustFilter(t *testing.T, c filter.Config) *filter.Filter {
	t.Helper()
	f, err := filter.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustKey(t *testing.T, src string) *filter.Key {
	t.Helper()
	k, err := filter.CompileKey(src)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An event gets a delivery per destination whose filter it matches, in
// the route's order, with its lane on an ordered destination; none
// leaves it unmatched; an empty key leaves its delivery unordered.
func TestDeliveriesFollowFilters(t *testing.T) {
	g := &Gateway{Mode: Async, Logger: zap.NewNop(), Destinations: []Destination{
		{Name: "sales", Filter: mustFilter(t, filter.Config{Types: []string{"transaction.sale.*"}})},
		{Name: "large", Filter: mustFilter(t, filter.Config{Expression: `double(event.data.amount) >= 100.0`})},
		{Name: "ledger", OrderBy: mustKey(t, "subject")},
	}}
	ev := func(typ, subject, amount string) *schemas.Event {
		return &schemas.Event{ID: "e", Type: typ, Subject: subject, Data: json.RawMessage(`{"amount":"` + amount + `"}`)}
	}
	names := func(ds []store.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Destination+":"+string(d.Status)+":"+d.Lane)
		}
		return out
	}
	var errs evalErrors
	cases := []struct {
		ev   *schemas.Event
		want []string
	}{
		{ev("transaction.sale.success", "tx1", "5.00"), []string{"sales:pending:", "ledger:pending:tx1"}},
		{ev("transaction.sale.success", "tx2", "500"), []string{"sales:pending:", "large:pending:", "ledger:pending:tx2"}},
		{ev("ach.settled", "", "5"), []string{"ledger:pending:"}},
	}
	for _, c := range cases {
		got := names(g.deliveries(c.ev, "/usaepay", &errs))
		if len(got) != len(c.want) {
			t.Fatalf("%s: %v, want %v", c.ev.Type, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%s: %v, want %v", c.ev.Type, got, c.want)
			}
		}
	}
	g.Destinations = g.Destinations[:2]
	if ds := g.deliveries(ev("ach.settled", "", "5"), "/usaepay", &errs); len(ds) != 0 || store.Rollup(ds) != store.StatusUnmatched {
		t.Fatalf("an event matching no destination got %v", names(ds))
	}
	if errs.n != 0 {
		t.Fatalf("evaluation errors: %v", errs.first)
	}
}

// A sync route's event gets its reserved sync delivery first, named after
// the source, and its async destinations held.
func TestSyncDeliveriesHoldTheAsyncDestinations(t *testing.T) {
	g := &Gateway{Mode: Sync, Logger: zap.NewNop(), Destinations: []Destination{{Name: "audit"}}}
	ds := g.deliveries(&schemas.Event{ID: "e", Type: "t"}, "/usaepay", &evalErrors{})
	if len(ds) != 2 || ds[0].Destination != "/usaepay" || ds[0].Status != store.StatusReserved ||
		ds[1].Destination != "audit" || ds[1].Status != store.StatusHeld {
		t.Fatalf("sync deliveries %+v", ds)
	}
}

// A filter or key that cannot be evaluated is counted once per request:
// the filter does not match, the key leaves the delivery unordered.
func TestEvaluationErrorsAreCounted(t *testing.T) {
	g := &Gateway{Mode: Async, Logger: zap.NewNop(), Destinations: []Destination{
		{Name: "a", Filter: mustFilter(t, filter.Config{Expression: `event.data.missing == "x"`})},
		{Name: "b", OrderBy: mustKey(t, "event.data.missing")},
	}}
	var errs evalErrors
	ds := g.deliveries(&schemas.Event{ID: "e", Type: "t", Data: json.RawMessage(`{}`)}, "/s", &errs)
	if len(ds) != 1 || ds[0].Destination != "b" || ds[0].Lane != "" || errs.n != 2 {
		t.Fatalf("deliveries %+v, %d errors", ds, errs.n)
	}
}

// BenchmarkDeliveries is what choosing an event's deliveries costs at
// ingest: a type glob, a CEL filter on a data field and an ordering key.
func BenchmarkDeliveries(b *testing.B) {
	compile := func(c filter.Config) *filter.Filter {
		f, err := filter.Compile(c)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	key, err := filter.CompileKey("subject")
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{Mode: Async, Logger: zap.NewNop(), Destinations: []Destination{
		{Name: "sales", Filter: compile(filter.Config{Types: []string{"transaction.sale.*"}})},
		{Name: "large", Filter: compile(filter.Config{Expression: `double(event.data.object.amount) >= 100.0`})},
		{Name: "ledger", OrderBy: key},
	}}
	ev := &schemas.Event{ID: "e", Type: "transaction.sale.success", Subject: "tx1",
		Data: json.RawMessage(`{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":"tx1","amount":"150.00"}}`)}
	var errs evalErrors
	b.ReportAllocs()
	for b.Loop() {
		if ds := g.deliveries(ev, "/usaepay", &errs); len(ds) != 3 {
			b.Fatal(ds)
		}
	}
}
