package filter

import (
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// BenchmarkMatch is the cost a filter adds to ingest, per event and
// destination, on a real payment event (a voided sale, 409 bytes of data)
// and on a subscription order (5,950 bytes of data, the field read halfway
// through it).
func BenchmarkMatch(b *testing.B) {
	voided := fixtureEvent(b, "usaepay/transaction.sale.voided.json", normalize.Options{})
	order := fixtureEvent(b, "sublytics/order_updated.json", normalize.Options{})
	cases := []struct {
		name string
		c    Config
		data bool // reads the sublytics order
	}{
		{"types-exact", Config{Types: []string{"ach.settled", "transaction.sale.voided"}}, false},
		{"types-glob", Config{Types: []string{"ach.*", "*.refund.*", "transaction.sale.*"}}, false},
		{"cel-type", Config{Expression: `event.type.startsWith("transaction.sale.") && event.subject != ""`}, false},
		{"cel-data", Config{Expression: `event.data.object.status == "Voided"`}, false},
		{"cel-data-6KB", Config{Expression: `event.data.order.is_test == "1"`}, true},
	}
	for _, c := range cases {
		f := mustCompile(b, c.c)
		ev := voided
		if c.data {
			ev = order
		}
		if ok, err := f.Match(ev); !ok || err != nil {
			b.Fatalf("%s: got %v, %v", c.name, ok, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := f.Match(ev); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}
