package sim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// USAePay is the payment gateway, as normalize names it.
const USAePay = normalize.USAePay

// Environment variables read when the matching payment gateway option is
// not given.
const (
	EnvUSAePayPassword     = "WEBHOOK_USAEPAY_PASSWORD"
	EnvUSAePaySignatureKey = "WEBHOOK_USAEPAY_SIGNATURE_KEY"
)

// The payment gateway sends over up to USAePayMaxConns parallel
// connections, out of order, and retries a timeout or a 4xx/5xx on its
// documented schedule (Config.Retry), compressed in time.
func init() {
	Register(Provider{
		Name:     USAePay,
		Generate: (*Generator).usaepay,
		Workers:  func(cfg *Config) int { return min(cfg.Concurrency, cfg.USAePayMaxConns) },
		MaxConns: func(cfg *Config) int { return cfg.USAePayMaxConns },
		Timeout:  func(cfg *Config) time.Duration { return cfg.USAePayTimeout },
		Retry:    func(cfg *Config, attempt int) (time.Duration, bool) { return cfg.Retry.Delay(attempt) },
		Options: []Option{
			{Name: "usaepay-user", Type: "string", Usage: "payment gateway's HTTP Basic user",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.BasicUser = v
					}
					return nil
				}},
			{Name: "usaepay-password", Type: "string", Env: EnvUSAePayPassword, Usage: "payment gateway's HTTP Basic password",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.BasicPassword = v
					}
					return nil
				}},
			{Name: "usaepay-signature-key", Type: "string", Env: EnvUSAePaySignatureKey, Usage: "payment gateway's X-Signature HMAC key",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.SignatureKey = v
					}
					return nil
				}},
			{Name: "usaepay-max-conns", Type: "int", Default: "20", Usage: "payment gateway: parallel connections",
				Apply: func(cfg *Config, _ *ProviderConfig, v string) error { return parseOption(&cfg.USAePayMaxConns, v) }},
			{Name: "usaepay-timeout", Type: "duration", Default: "10s", Usage: "payment gateway: timeout per attempt",
				Apply: func(cfg *Config, _ *ProviderConfig, v string) error { return parseOption(&cfg.USAePayTimeout, v) }},
		},
	})
}

// USAePayRetrySchedule is the payment gateway's documented retry schedule
// after a timeout or a 4xx/5xx: the delay before each retry, counted from
// the failed attempt. Every 5 minutes for the first hour, hourly for the
// next 11 hours, every 3 hours for 12 hours, every 6 hours for 48 hours:
// 35 retries over 72 hours.
var USAePayRetrySchedule = func() []time.Duration {
	var s []time.Duration
	for _, step := range []struct {
		every time.Duration
		n     int
	}{{5 * time.Minute, 12}, {time.Hour, 11}, {3 * time.Hour, 4}, {6 * time.Hour, 8}} {
		for range step.n {
			s = append(s, step.every)
		}
	}
	return s
}()

// DefaultRetryScale runs the payment gateway's schedule 3600 times faster
// than real time: an hour of it takes a second, the first hour's retries
// come every 83ms, and all 72 hours take 72s.
const DefaultRetryScale = 3600

// RetryPolicy is how the simulated payment gateway retries: its documented
// schedule (USAePayRetrySchedule), compressed in time.
type RetryPolicy struct {
	// Attempts caps the attempts per body, the first one included; 0 means
	// the whole schedule (36 attempts).
	Attempts int `json:"attempts,omitempty"`
	// Scale is how many times faster than real time the schedule runs;
	// 0 means DefaultRetryScale.
	Scale float64 `json:"scale,omitempty"`
}

// Delay is how long the sender waits after the given failed attempt (1 for
// the first), or false when it gives up.
func (p RetryPolicy) Delay(attempt int) (time.Duration, bool) {
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = len(USAePayRetrySchedule) + 1
	}
	if attempt < 1 || attempt >= attempts || attempt > len(USAePayRetrySchedule) {
		return 0, false
	}
	scale := p.Scale
	if scale <= 0 {
		scale = DefaultRetryScale
	}
	return time.Duration(float64(USAePayRetrySchedule[attempt-1]) / scale), true
}

func (g *Generator) usaepay(event string) *Event {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	key := randString(g.rng, lowerAlnum, 15)
	amount := g.cents(100, 50000)
	var object obj
	switch {
	case strings.HasPrefix(event, "cardupdate."):
		object = g.cardUpdate(key, strings.TrimPrefix(event, "cardupdate."))
	case len(event) > 4 && event[:4] == "cau.":
		object = obj{
			{"type", "cau"}, {"key", key},
			{"customer_key", randString(g.rng, lowerAlnum, 15)},
			{"card", obj{{"last4", fmt.Sprintf("%04d", g.rng.IntN(10000))}, {"expiration", fmt.Sprintf("%02d%02d", 1+g.rng.IntN(12), 27+g.rng.IntN(5))}}},
			{"status", event[4:]},
		}
	case len(event) > 4 && event[:4] == "ach.":
		object = obj{
			{"type", "transaction"}, {"key", key}, {"refnum", strconv.Itoa(3000000000 + g.rng.IntN(999999999))},
			{"trantype", "Check Sale"}, {"amount_detail", obj{{"amount", money(amount)}}},
			{"check", obj{{"status", event[4:]}, {"routing", "XXXXX" + strconv.Itoa(1000+g.rng.IntN(9000))}}},
		}
		switch event {
		case "ach.note_added":
			object = append(object, kv{"note", "Customer called about the debit"})
		case "ach.voided":
			object = append(object, kv{"check_status", "voided"})
		}
	case len(event) > 8 && event[:8] == "product.":
		object = obj{
			{"type", "product"}, {"key", key}, {"name", "Widget " + strconv.Itoa(g.rng.IntN(100))},
			{"price", money(amount)},
			{"inventory", []any{obj{{"inventory_location_key", randString(g.rng, lowerAlnum, 15)}, {"qtyOnHand", strconv.Itoa(g.rng.IntN(500))}}}},
		}
	case len(event) > 11 && event[:11] == "settlement.":
		object = obj{
			{"type", "batch"}, {"key", key}, {"batchrefnum", strconv.Itoa(100000 + g.rng.IntN(900000))},
			{"sequence", strconv.Itoa(1 + g.rng.IntN(9000))},
			{"opened", g.recent().Add(-24 * time.Hour).In(g.opts.Location).Format(providerTimeLayout)},
			{"closed", g.recent().In(g.opts.Location).Format(providerTimeLayout)},
			{"sales_amount", money(amount * 10)}, {"sales_count", strconv.Itoa(1 + g.rng.IntN(90))},
		}
	default: // transaction.*
		result, code := "Approved", "A"
		if event == "transaction.sale.failure" {
			result, code = "Declined", "D"
		}
		object = obj{
			{"type", "transaction"}, {"key", key}, {"refnum", strconv.Itoa(3000000000 + g.rng.IntN(999999999))},
			{"amount_detail", obj{{"amount", money(amount)}, {"tax", "0.00"}, {"tip", "0.00"}}},
			{"authcode", strconv.Itoa(100000 + g.rng.IntN(900000))},
			{"result_code", code}, {"result", result},
		}
	}
	doc := obj{
		{"type", "event"},
		{"event_triggered", g.recent().In(g.opts.Location).Format(providerTimeLayout)},
		{"event_type", event},
		{"event_body", obj{
			{"merchant", obj{{"merch_key", "7qwnw4j2kmqvrb3"}}},
			{"object", object},
		}},
		{"event_id", id},
	}
	return &Event{Provider: USAePay, Type: event, Body: marshalDoc(doc, "    "), ProviderID: id, Items: 1, doc: doc}
}

// cardUpdate builds the card updater's object as the REST v2 sender names
// it: type "cardupdate" with the card before the update (original_card) and,
// when the card changed, the card after it. The documents name the events
// and these two members only; the rest follows the gateway's other objects
// (see normalize/testdata/README.md).
func (g *Generator) cardUpdate(key, status string) obj {
	exp := func() string { return fmt.Sprintf("%02d%02d", 1+g.rng.IntN(12), 27+g.rng.IntN(5)) }
	last4 := func() string { return fmt.Sprintf("%04d", g.rng.IntN(10000)) }
	orig := obj{{"type", "Visa"}, {"number", "4000xxxxxxxx" + last4()}, {"expiration", exp()}}
	o := obj{
		{"type", "cardupdate"}, {"key", key}, {"status", status},
		{"customer", obj{{"type", "customer"}, {"key", randString(g.rng, lowerAlnum, 15)}}},
		{"payment_method", obj{{"type", "customer_payment_method"}, {"key", randString(g.rng, lowerAlnum, 15)}}},
		{"original_card", orig},
	}
	switch status {
	case "updated_expiration":
		o = append(o, kv{"updated_card", obj{{"type", "Visa"}, {"number", orig.get("number")}, {"expiration", exp()}}})
	case "updated_card":
		o = append(o, kv{"updated_card", obj{{"type", "Visa"}, {"number", "4000xxxxxxxx" + last4()}, {"expiration", exp()}}})
	case "contact_customer":
		o = append(o, kv{"response_code", "Q"})
	case "account_closed":
		o = append(o, kv{"response_code", "C"})
	}
	return o
}
