package normalize

import (
	"encoding/json"
	"fmt"
	"testing"
)

// sized returns a fixture re-encoded compactly (as providers send it) and
// grown to about target bytes by adding line items to the object at
// payload, so the benchmarks measure realistic small and large bodies.
func sized(tb testing.TB, fixture string, target int, payload ...string) []byte {
	tb.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readFixture(tb, fixture), &doc); err != nil {
		tb.Fatal(err)
	}
	obj := doc
	for _, k := range payload {
		obj = obj[k].(map[string]any)
	}
	body, _ := json.Marshal(doc)
	var items []any
	for i := 0; len(body) < target; i++ {
		items = append(items, map[string]any{
			"sku": fmt.Sprintf("SKU-%05d", i), "name": "Expert Mens Box - 1 month", "quantity": 1 + i%3,
			"price": "25.00", "is_recurring": i%2 == 0, "notes": nil,
		})
		obj["line_items"] = items
		body, _ = json.Marshal(doc)
	}
	return body
}

func benchNormalize(b *testing.B, body []byte, provider string) {
	b.Helper()
	o := Options{Provider: provider, ReceivedAt: received}
	if _, err := Normalize(body, o); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(body, o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeUSAePay(b *testing.B) {
	for _, size := range []int{1 << 10, 12 << 10} {
		body := sized(b, "usaepay/transaction.sale.success.json", size, "event_body", "object")
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) { benchNormalize(b, body, USAePay) })
	}
}

func BenchmarkNormalizeSublytics(b *testing.B) {
	for _, size := range []int{1 << 10, 12 << 10} {
		body := sized(b, "sublytics/order_offer_updated.json", size, "webhook_data", "order_offer")
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) { benchNormalize(b, body, Sublytics) })
	}
}

func BenchmarkNormalizeOpenLoyalty(b *testing.B) {
	for _, size := range []int{1 << 10, 12 << 10} {
		body := sized(b, "openloyalty/customer.registered.json", size, "data", "data")
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) { benchNormalize(b, body, OpenLoyalty) })
	}
}

// BenchmarkNormalizeOpenLoyaltyBatch is the largest documented POST: the
// expiring-points notification for 1000 customers.
func BenchmarkNormalizeOpenLoyaltyBatch(b *testing.B) {
	var one map[string]any
	if err := json.Unmarshal(readFixture(b, "openloyalty/account.expiring_points_notification.json"), &one); err != nil {
		b.Fatal(err)
	}
	item := one["data"].(map[string]any)
	items := make([]any, 1000)
	for i := range items {
		it := map[string]any{}
		for k, v := range item {
			it[k] = v
		}
		it["customerId"] = fmt.Sprintf("00000000-0000-474c-b092-%012d", i)
		items[i] = it
	}
	one["data"] = items
	body, _ := json.Marshal(one)
	b.Run(fmt.Sprintf("1000items_%dKB", len(body)>>10), func(b *testing.B) { benchNormalize(b, body, OpenLoyalty) })
}

// BenchmarkNormalizeAuto adds detection to the 1 KB USAePay body.
func BenchmarkNormalizeAuto(b *testing.B) {
	benchNormalize(b, sized(b, "usaepay/transaction.sale.success.json", 1<<10, "event_body", "object"), Auto)
}

func BenchmarkDetect(b *testing.B) {
	body := sized(b, "sublytics/order_offer_updated.json", 12<<10, "webhook_data", "order_offer")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Detect(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvalidJSON is the cost of refusing a body with a typo late in
// it: the error path decodes again to find the offset.
func BenchmarkInvalidJSON(b *testing.B) {
	body := sized(b, "usaepay/transaction.sale.success.json", 12<<10, "event_body", "object")
	body = append(body[:len(body)-1:len(body)-1], ",}"...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize(body, Options{ReceivedAt: received}); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkBaseline gives the benchmarks above a yardstick measured in the
// same run (timings on a shared machine are only comparable as ratios):
// json.Valid alone, and decoding into generic values, which is what a
// straightforward normalizer would do before reading three fields.
func BenchmarkBaseline(b *testing.B) {
	for _, size := range []int{1 << 10, 12 << 10} {
		body := sized(b, "usaepay/transaction.sale.success.json", size, "event_body", "object")
		b.Run(fmt.Sprintf("JSONValid/%dB", len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if !json.Valid(body) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(fmt.Sprintf("UnmarshalAny/%dB", len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var v map[string]any
				if err := json.Unmarshal(body, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
