package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// fixtureEvent normalizes one of the normalize package's provider samples
// the way a route for that provider does, with opts on top.
func fixtureEvent(tb testing.TB, rel string, opts normalize.Options) *schemas.Event {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join("..", "normalize", "testdata", filepath.FromSlash(rel)))
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Provider == "" {
		opts.Provider = strings.Split(rel, "/")[0]
	}
	evs, err := normalize.Normalize(body, opts)
	if err != nil {
		tb.Fatalf("normalize %s: %v", rel, err)
	}
	return &evs[0]
}

func mustCompile(tb testing.TB, c Config) *Filter {
	tb.Helper()
	f, err := Compile(c)
	if err != nil {
		tb.Fatalf("Compile(%+v): %v", c, err)
	}
	return f
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, typ string
		want         bool
	}{
		{"transaction.sale.success", "transaction.sale.success", true},
		{"transaction.sale.success", "transaction.sale.successful", false},
		{"transaction.sale.success", "Transaction.sale.success", false},
		{"transaction.sale.*", "transaction.sale.success", true},
		{"transaction.sale.*", "transaction.sale.batch.closed", true}, // any characters, dots included
		{"transaction.sale.*", "transaction.sale.", true},             // possibly none
		{"transaction.sale.*", "transaction.sale", false},
		{"transaction.sale.*", "transaction.refund.success", false},
		{"transaction.*.success", "transaction.refund.success", true},
		{"transaction.*.success", "transaction.success", false},
		{"*.voided", "transaction.sale.voided", true},
		{"*.voided", "ach.voided", true},
		{"*.voided", "transaction.sale.unvoided", false},
		{"order_*", "order_offer_updated", true},
		{"order_*", "shipment_shipped", false},
		{"*_*_*", "order_offer_updated", true},
		{"*_*_*", "order_updated", false},
		{"a*b*a", "aba", true},
		{"a*b*a", "ab", false}, // the suffix must not reuse the prefix
		{"a*aa*a", "aaaa", true},
		{"a*aa*a", "aaa", false},
		{"*", "anything.at.all", true},
		{"**", "x", true},
		{"com.usaepay.transaction.*", "com.usaepay.transaction.sale.success", true},
	}
	for _, tt := range tests {
		f := mustCompile(t, Config{Types: []string{tt.pattern}})
		if got, err := f.Match(&schemas.Event{Type: tt.typ}); got != tt.want || err != nil {
			t.Errorf("pattern %q, type %q: got %v, %v; want %v", tt.pattern, tt.typ, got, err, tt.want)
		}
	}
}

func TestTypesListIsAnyOf(t *testing.T) {
	f := mustCompile(t, Config{Types: []string{"ach.settled", "transaction.sale.*", "*.voided"}})
	for typ, want := range map[string]bool{
		"ach.settled": true, "ach.voided": true, "transaction.sale.queued": true,
		"ach.failed": false, "transaction.refund.success": false,
	} {
		if got, _ := f.Match(&schemas.Event{Type: typ}); got != want {
			t.Errorf("%s: got %v, want %v", typ, got, want)
		}
	}
}

func TestBadTypePattern(t *testing.T) {
	for _, p := range []string{"", "transaction sale", "a\tb", "a\x00b", strings.Repeat("a", schemas.MaxTypeLength+1), "\xff"} {
		_, err := Compile(Config{Types: []string{"ok.type", p}})
		if err == nil {
			t.Errorf("pattern %q compiled", p)
			continue
		}
		if !strings.Contains(err.Error(), "types[1]") {
			t.Errorf("pattern %q: error %q does not name the entry", p, err)
		}
	}
}

func TestEmptyFilterMatchesAll(t *testing.T) {
	f := mustCompile(t, Config{})
	if !f.MatchesAll() {
		t.Error("the zero Config is not MatchesAll")
	}
	if mustCompile(t, Config{Types: []string{"a"}}).MatchesAll() || mustCompile(t, Config{Expression: "true"}).MatchesAll() {
		t.Error("a filter with types or an expression is MatchesAll")
	}
	if !mustCompile(t, Config{Types: []string{"*"}}).types.all {
		t.Error(`"*" is not compiled as match-all`)
	}
	for _, rel := range []string{"usaepay/ach.failed.json", "sublytics/shipment_rma.json", "openloyalty/customer.deleted.json"} {
		if ok, err := f.Match(fixtureEvent(t, rel, normalize.Options{})); !ok || err != nil {
			t.Errorf("%s: got %v, %v", rel, ok, err)
		}
	}
}

// TestTypesOverSimulatedEvents checks patterns against one generated event
// of every type each simulated provider documents, normalized as a route
// does: the types a filter is written against are the ones the gateway
// emits.
func TestTypesOverSimulatedEvents(t *testing.T) {
	g := sim.NewGenerator(sim.GenOptions{Seed: 7, BatchShare: -1})
	all := mustCompile(t, Config{Types: []string{"*"}})
	sales := mustCompile(t, Config{Types: []string{"transaction.sale.*"}})
	byExpr := mustCompile(t, Config{Expression: `event.type.startsWith("transaction.sale.")`})
	n := 0
	for _, provider := range sim.Providers() {
		for _, typ := range sim.EventTypes[provider] {
			sev, err := g.Generate(provider, typ)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := normalize.Normalize(sev.Body, normalize.Options{Provider: provider})
			if err != nil {
				t.Fatalf("%s %s: %v", provider, typ, err)
			}
			ev := &evs[0]
			n++
			exact := mustCompile(t, Config{Types: []string{ev.Type}})
			wantSale := strings.HasPrefix(ev.Type, "transaction.sale.")
			for name, c := range map[string]struct {
				f    *Filter
				want bool
			}{"*": {all, true}, "exact": {exact, true}, "glob": {sales, wantSale}, "cel": {byExpr, wantSale}} {
				if got, err := c.f.Match(ev); got != c.want || err != nil {
					t.Errorf("%s %s, %s filter: got %v, %v; want %v", provider, ev.Type, name, got, err, c.want)
				}
			}
		}
	}
	if n < 40 {
		t.Fatalf("only %d simulated types", n)
	}
}

func TestExpressionOverProviderEvents(t *testing.T) {
	voided := fixtureEvent(t, "usaepay/transaction.sale.voided.json", normalize.Options{})
	success := fixtureEvent(t, "usaepay/transaction.sale.success.json", normalize.Options{})
	prefixed := fixtureEvent(t, "usaepay/transaction.sale.success.json", normalize.Options{TypePrefix: "com.usaepay.", Source: "/shop-eu/usaepay"})
	order := fixtureEvent(t, "sublytics/order_updated.json", normalize.Options{})
	customer := fixtureEvent(t, "openloyalty/customer.registered.json", normalize.Options{})

	tests := []struct {
		name string
		c    Config
		ev   *schemas.Event
		want bool
	}{
		{"type", Config{Expression: `event.type == "transaction.sale.voided"`}, voided, true},
		{"type other", Config{Expression: `event.type == "transaction.sale.voided"`}, success, false},
		{"subject", Config{Expression: `event.subject == "eqffpgqaqcdahjk"`}, voided, true},
		{"source", Config{Expression: `event.source == "/usaepay"`}, voided, true},
		{"source configured", Config{Expression: `event.source.startsWith("/shop-eu/")`}, prefixed, true},
		{"id", Config{Expression: `event.id.size() > 0`}, success, true},
		{"provider", Config{Expression: `event.provider == "usaepay"`}, voided, true},
		{"time", Config{Expression: `event.time < timestamp("2021-04-08T00:00:00Z")`}, success, true},
		{"time later", Config{Expression: `event.time < timestamp("2021-04-08T00:00:00Z")`}, voided, false},
		{"data string", Config{Expression: `event.data.object.status == "Voided"`}, voided, true},
		{"data amount", Config{Expression: `double(event.data.object.amount_detail.amount) >= 5.0`}, success, true},
		{"data amount above", Config{Expression: `double(event.data.object.amount_detail.amount) > 100.0`}, success, false},
		{"optional field", Config{Expression: `event.data.?object.?status.orValue("none") == "none"`}, success, true},
		{"has", Config{Expression: `has(event.data.object.status)`}, success, false},
		{"subscription order", Config{Expression: `event.data.order.is_test == "1" && event.subject == event.data.order.id`}, order, true},
		{"loyalty number", Config{Expression: `event.data.data.phone == 123456789`}, customer, true},
		{"loyalty nested", Config{Expression: `event.data.data.address.country in ["GB", "IE"]`}, customer, true},
		{"dyn boolean", Config{Expression: `event.data.data.agreement1`}, customer, true},
		{"types and expression", Config{Types: []string{"com.usaepay.transaction.*"}, Expression: `event.subject != ""`}, prefixed, true},
		// The types are checked first: an expression that would fail is not
		// evaluated for an event of another type.
		{"types first", Config{Types: []string{"transaction.refund.*"}, Expression: `event.data.nosuch == 1`}, success, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, tt.c)
			got, err := f.Match(tt.ev)
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			// The shared Input gives the same answer.
			if got2, err := f.MatchInput(NewInput(tt.ev)); got2 != got || err != nil {
				t.Fatalf("MatchInput: got %v, %v", got2, err)
			}
		})
	}
}

func TestEvaluationErrors(t *testing.T) {
	success := fixtureEvent(t, "usaepay/transaction.sale.success.json", normalize.Options{})
	broken := *success
	broken.Data = []byte(`{"object":{"type":12x}}`) // not what a schemas.Event holds
	tests := []struct {
		name, expr string
		ev         *schemas.Event
		want       string
	}{
		{"missing field", `event.data.object.status == "Voided"`, success, "no such key: status"},
		{"missing object", `event.data.nothing.here == 1`, success, "no such key: nothing"},
		{"not a number", `double(event.data.object.type) > 1.0`, success, "double"},
		{"dyn not boolean", `event.data.object.type`, success, "not a boolean"},
		{"malformed data", `event.data.object.type == "x"`, &broken, "JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, Config{Expression: tt.expr})
			got, err := f.Match(tt.ev)
			if got || !errors.Is(err, ErrEval) {
				t.Fatalf("got %v, %v; want no match and ErrEval", got, err)
			}
			if errors.Is(err, ErrCostLimit) {
				t.Errorf("%v is ErrCostLimit", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.expr)) {
				t.Errorf("error %q does not say %q and name the expression", err, tt.want)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	var nums []string
	for i := range 60 {
		nums = append(nums, fmt.Sprint(i))
	}
	l := "[" + strings.Join(nums, ",") + "]"
	// 60 × 60 inner evaluations cost about 26,000.
	f := mustCompile(t, Config{Expression: fmt.Sprintf(`%s.all(a, %s.all(b, a + b >= 0))`, l, l)})
	got, err := f.Match(&schemas.Event{Type: "t"})
	if got || !errors.Is(err, ErrEval) || !errors.Is(err, ErrCostLimit) {
		t.Fatalf("got %v, %v; want no match, ErrEval and ErrCostLimit", got, err)
	}
	// A search through an order of 1,000 line items stays within it.
	items := make([]string, 1000)
	for i := range items {
		items[i] = fmt.Sprintf(`{"sku":"SKU-%05d","quantity":%d}`, i, 1+i%3)
	}
	order := &schemas.Event{Type: "order_updated", Data: []byte(`{"order":{"line_items":[` + strings.Join(items, ",") + `]}}`)}
	f = mustCompile(t, Config{Expression: `event.data.order.line_items.exists(i, i.sku == "SKU-00999")`})
	if got, err := f.Match(order); !got || err != nil {
		t.Fatalf("1,000 line items: got %v, %v", got, err)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr   string
		line, column int
		msg          string
	}{
		{"syntax", `event.type == `, 1, 15, "Syntax error"},
		{"unbalanced", `event.type == "a" && (event.subject == "b"`, 1, 43, "Syntax error"},
		{"second line", "event.type == \"a\" &&\n  event.subjet == \"b\"", 2, 8, "undefined field 'subjet'"},
		{"unknown variable", `request.method == "POST"`, 1, 1, "undeclared reference to 'request'"},
		{"unknown function", `event.type.lower() == "a"`, 1, 17, "undeclared reference to 'lower'"},
		{"type error", `event.type + 1 == 2`, 1, 12, "no matching overload"},
		{"time vs string", `event.time == "2021-04-07"`, 1, 12, "no matching overload"},
		{"string result", `event.type`, 0, 0, "must be a boolean, not string"},
		{"int result", `event.subject.size()`, 0, 0, "must be a boolean, not int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(Config{Types: []string{"*"}, Expression: tt.expr})
			var xe *ExprError
			if !errors.As(err, &xe) {
				t.Fatalf("got %v, want an *ExprError", err)
			}
			if xe.Line != tt.line || xe.Column != tt.column || xe.Expression != tt.expr {
				t.Errorf("got %d:%d for %q, want %d:%d", xe.Line, xe.Column, xe.Expression, tt.line, tt.column)
			}
			text := err.Error()
			if !strings.Contains(text, tt.msg) || !strings.Contains(text, fmt.Sprintf("%q", tt.expr)) {
				t.Errorf("error %q does not name the expression and say %q", text, tt.msg)
			}
			if tt.line > 0 && !strings.Contains(text, fmt.Sprintf(": %d:%d: ", tt.line, tt.column)) {
				t.Errorf("error %q does not give the position %d:%d", text, tt.line, tt.column)
			}
		})
	}
}

func TestCompileErrorText(t *testing.T) {
	_, err := Compile(Config{Expression: `event.type == "transaction.sale.voided" &&`})
	want := `filter: expression "event.type == \"transaction.sale.voided\" &&": 1:43: Syntax error: mismatched input '<EOF>' expecting`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got  %v\nwant %s...", err, want)
	}
}

// TestInputDecodesDataOnce checks that data is read only by an expression
// that reads it, and set up once for all the filters sharing an Input.
func TestInputDecodesDataOnce(t *testing.T) {
	ev := fixtureEvent(t, "usaepay/transaction.sale.voided.json", normalize.Options{})
	in := NewInput(ev)
	onType := mustCompile(t, Config{Expression: `event.type.endsWith(".voided") && event.subject != ""`})
	if ok, err := onType.MatchInput(in); !ok || err != nil {
		t.Fatalf("got %v, %v", ok, err)
	}
	if in.decoded {
		t.Fatal("an expression on the type decoded the data")
	}
	onData := mustCompile(t, Config{Expression: `event.data.object.status == "Voided"`})
	if ok, err := onData.MatchInput(in); !ok || err != nil {
		t.Fatalf("got %v, %v", ok, err)
	}
	if !in.decoded {
		t.Fatal("data not decoded")
	}
	// A later filter reuses the view made by the first one.
	ev.Data = []byte(`{"object":{"status":"Changed"}}`)
	if ok, _ := onData.MatchInput(in); !ok {
		t.Fatal("the second filter decoded the data again")
	}
}

func TestConcurrentMatch(t *testing.T) {
	f := mustCompile(t, Config{Types: []string{"transaction.*"}, Expression: `event.data.object.status == "Voided" || event.data.object.type == "transaction"`})
	evs := []*schemas.Event{
		fixtureEvent(t, "usaepay/transaction.sale.voided.json", normalize.Options{}),
		fixtureEvent(t, "usaepay/transaction.refund.success.json", normalize.Options{}),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ok, err := f.Match(evs[(w+i)%2])
				if !ok || err != nil {
					errs <- fmt.Errorf("got %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTimeIsTimestamp(t *testing.T) {
	ev := &schemas.Event{Type: "t", Time: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	f := mustCompile(t, Config{Expression: `event.time.getHours() == 10 && event.time.getFullYear() == 2026`})
	if ok, err := f.Match(ev); !ok || err != nil {
		t.Fatalf("got %v, %v", ok, err)
	}
}

func TestCompileErrorsAllListed(t *testing.T) {
	_, err := Compile(Config{Expression: `request.method == "POST" && event.subjet == ""`})
	want := `filter: expression "request.method == \"POST\" && event.subjet == \"\"": 1:1: undeclared reference to 'request' (in container ''); 1:34: undefined field 'subjet'`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestKey(t *testing.T) {
	ev := &schemas.Event{Type: "transaction.sale.voided", Subject: "tx-1",
		Data: json.RawMessage(`{"object":{"key":"k-9","n":42}}`)}
	for _, c := range []struct{ src, want string }{
		{"subject", "tx-1"},
		{"event.subject", "tx-1"},
		{"event.data.object.key", "k-9"},
		{"event.data.object.n", "42"},
		{`event.subject + "/" + event.type`, "tx-1/transaction.sale.voided"},
	} {
		k, err := CompileKey(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		got, err := k.Eval(NewInput(ev))
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.src, got, err, c.want)
		}
	}
	if _, err := CompileKey("event.subject =="); err == nil {
		t.Error("a key that does not parse compiled")
	} else if e, ok := err.(*ExprError); !ok || e.Line != 1 {
		t.Errorf("error %v: want an ExprError with a position", err)
	}
	if _, err := CompileKey("event.subject == \"x\""); err == nil {
		t.Error("a boolean key compiled")
	}
	k, _ := CompileKey("event.data.missing")
	if _, err := k.Eval(NewInput(ev)); !errors.Is(err, ErrEval) {
		t.Errorf("missing field: %v, want ErrEval", err)
	}
}
