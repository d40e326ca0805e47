package sim

import (
	"strconv"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// Sublytics is the subscription platform, as normalize names it.
const Sublytics = normalize.Sublytics

// EnvSublyticsSecretPath is read when --sublytics-secret-path is not given.
const EnvSublyticsSecretPath = "WEBHOOK_SUBLYTICS_SECRET_PATH"

// The subscription platform sends in bursts from one sender (its timeout is
// undocumented) and numbers its events, as a JSON string or number; a
// redelivery carries the id in its other form.
func init() {
	Register(Provider{
		Name:     Sublytics,
		Generate: (*Generator).sublytics,
		// The state is the next event id.
		State: func(g *Generator) any {
			start := g.opts.SublyticsStartID
			if start == 0 {
				// Milliseconds since the epoch stay far below 2^53, so
				// the id is exact as a JSON number too.
				start = uint64(g.opts.Now().UnixMilli())
			}
			return &start
		},
		Redeliver: func(g *Generator, e *Event) *Event {
			doc := e.document().(obj)
			switch v := doc.get("webhook_event_id").(type) {
			case string:
				n, _ := strconv.ParseUint(v, 10, 64)
				doc = doc.set("webhook_event_id", n)
			default:
				doc = doc.set("webhook_event_id", e.ProviderID)
			}
			return g.reencode(e, doc)
		},
		Timeout: func(cfg *Config) time.Duration { return cfg.SublyticsTimeout },
		Bursts:  true,
		Options: []Option{
			{Name: "sublytics-secret-path", Type: "string", Env: EnvSublyticsSecretPath, Usage: "subscription platform's secret path segment",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.SecretPath = v
					}
					return nil
				}},
		},
	})
}

// sublyticsObject maps an event to its webhook_type: the key under
// webhook_data that holds the object.
func sublyticsObject(event string) string {
	if t, ok := normalize.SublyticsObjectTypes[event]; ok {
		return t
	}
	return "transaction"
}

func (g *Generator) sublytics(event string) *Event {
	next := g.State(Sublytics).(*uint64)
	id := *next
	*next++
	idStr := strconv.FormatUint(id, 10)
	var idVal any = idStr
	if g.chance(g.opts.NumericIDShare) {
		idVal = id
	}
	when := g.recent().In(g.opts.Location)
	date := when.Format(providerTimeLayout)
	if g.chance(g.opts.ZeroDateShare) {
		date = "0000-00-00 00:00:00"
	}
	typ := sublyticsObject(event)
	num := func() string { return strconv.Itoa(100000 + g.rng.IntN(900000)) }
	zero := "0000-00-00 00:00:00"
	price := g.cents(500, 9900)
	offer := func(status string) obj {
		return obj{
			{"id", num()}, {"offer_id", strconv.Itoa(1 + g.rng.IntN(3000))},
			{"offer_name", []string{"Expert Mens Box - 1 month", "Test Box", "Gift Card"}[g.rng.IntN(3)]},
			{"order_offer_quantity", strconv.Itoa(1 + g.rng.IntN(5))},
			{"order_offer_price", money(price)}, {"is_recurring", "1"}, {"order_offer_upsell", nil},
			{"status_type_id", status}, {"connection_status_type_name", status},
			{"discount_id", nil}, {"cancel_type_id", nil}, {"cancel_by", nil},
			{"date_cancel", zero}, {"date_reactivate", nil},
			{"date_ordered", date}, {"date_created", date}, {"date_modified", date},
			{"order_offer_notes", "Order Offer marked as " + status}, {"is_test", "1"},
		}
	}
	customer := obj{
		{"customer_id", num()}, {"connection_id", "1"}, {"first_name", "Cody"}, {"last_name", "Smith"},
		{"email", "cody.smith+" + idStr + "@example.com"}, {"phone", "(562)-409-0578"},
		{"is_blacklist", "No"}, {"is_fraud", "No"}, {"customer_notes", "Customer created"},
	}
	var object obj
	switch typ {
	case "order":
		object = obj{
			{"id", num()}, {"customer_id", customer[0].v}, {"campaign_id", strconv.Itoa(1 + g.rng.IntN(20))},
			{"order_notes", "Order created"}, {"created_by", "api@demo.sublytics.com"},
			{"date_created", date}, {"date_ordered", date}, {"date_modified", date},
			{"is_test", "1"}, {"tracking1", "facebook"}, {"tracking2", "paid social"},
			{"order_offers", []any{offer("Active")}},
			{"customer", customer},
			{"order_revisions", []any{obj{
				{"id", num()}, {"modified_by", "api@demo.sublytics.com"}, {"orders_revision_type_id", nil},
				{"order_revision_value", nil}, {"order_notes", "Order created"}, {"date_modified", date},
			}}},
		}
	case "order_offer":
		status := "Active"
		if event == "order_offer_cancelled" {
			status = "Cancelled"
		}
		object = offer(status)
	case "shipment":
		if status, ok := fulfillmentStatus[event]; ok {
			object = g.fulfillment(event, status, date)
			break
		}
		status := map[string]string{
			"shipment_shipped": "Shipped", "shipment_cancelled": "Cancelled", "shipment_fulfilled": "Pending Tracking",
		}[event]
		object = obj{
			{"id", num()}, {"shipment_status_id", status},
			{"tracking_number", randString(g.rng, lowerAlnum, 13)}, {"carrier_id", nil},
			{"shipping_profile_id", "Free Shipping over $10"}, {"date_cancel", zero},
			{"date_scheduled", date}, {"date_complete", date}, {"date_scan", zero},
			{"date_deliver", zero}, {"date_return", zero}, {"date_rma", zero}, {"shipment_rma", nil},
		}
	default:
		declined := "APPROVED"
		if g.rng.IntN(10) == 0 {
			declined = "DECLINED"
		}
		skip := zero
		if event != "transaction_completed" {
			skip = date
		}
		object = obj{
			{"id", num()}, {"order_offer_id", nil}, {"payment_method_id", "Credit Card"},
			{"transaction_type_id", []string{"Sale", "Refund", "Void", "Capture"}[g.rng.IntN(4)]},
			{"transaction_charge", "Yes"}, {"transaction_cycle", "1"}, {"transaction_attempt", "1"},
			{"transaction_declined", declined}, {"merchant_id", "4"}, {"response_code", "100"},
			{"currency_id", "USD"}, {"transaction_price", money(price)}, {"transaction_tax", "0.00"},
			{"transaction_total", money(price)}, {"date_scheduled", date}, {"date_complete", date},
			{"date_cancelled", zero}, {"date_skip", skip},
			{"order", obj{{"order_id", num()}, {"customer_id", customer[0].v}, {"campaign_id", "2"}, {"is_test", "1"}}},
			{"customer", customer},
		}
	}
	doc := obj{
		{"webhook_type", typ},
		{"webhook_event", event},
		{"webhook_event_id", idVal},
		{"webhook_event_date", date},
		{"webhook_data", obj{{typ, object}}},
	}
	return &Event{Provider: Sublytics, Type: event, Body: marshalDoc(doc, "  "), ProviderID: idStr, Items: 1, doc: doc}
}

// fulfillmentStatus maps the Webhooks v2 fulfillment events to the
// shipment status they report.
var fulfillmentStatus = map[string]string{
	"shipment_scheduled":       "Scheduled",
	"shipment_address_updated": "Scheduled",
	"shipment_item_updated":    "Scheduled",
	"shipment_skipped":         "Skipped",
	"shipment_error":           "Error",
	"shipment_rma":             "Returned",
}

// fulfillment builds a Webhooks v2 shipment. The documents give the event
// names and say the object id is shipment_id, without an example; the shape
// is the v1 shipment named by a numeric shipment_id instead of id, plus the
// member that changed (see normalize/testdata/README.md).
func (g *Generator) fulfillment(event, status, date string) obj {
	zero := "0000-00-00 00:00:00"
	o := obj{
		{"shipment_id", 100000 + g.rng.IntN(900000)}, {"order_id", 100000 + g.rng.IntN(900000)},
		{"shipment_status_id", status}, {"shipment_tracking_id", nil}, {"carrier_id", nil},
		{"shipping_profile_id", "Free Shipping over $10"}, {"date_scheduled", date},
		{"date_cancel", zero}, {"date_complete", zero}, {"date_rma", zero}, {"shipment_rma", nil},
	}
	switch event {
	case "shipment_address_updated":
		o = append(o, kv{"shipping_address", obj{
			{"address1", strconv.Itoa(1+g.rng.IntN(900)) + " Main St"}, {"address2", nil}, {"city", "Long Beach"},
			{"state", "CA"}, {"zip", "90802"}, {"country", "US"},
		}})
	case "shipment_item_updated":
		o = append(o, kv{"shipment_items", []any{obj{
			{"offer_id", strconv.Itoa(1 + g.rng.IntN(3000))}, {"offer_name", "Expert Mens Box - 1 month"},
			{"quantity", strconv.Itoa(1 + g.rng.IntN(4))},
		}}})
	case "shipment_skipped":
		o = append(o, kv{"date_skip", date})
	case "shipment_error":
		o = append(o, kv{"shipment_error", "Fulfillment connection refused the order: invalid postal code"})
	case "shipment_rma":
		o = o.set("shipment_rma", "RMA-"+strconv.Itoa(g.rng.IntN(1000000))).set("date_rma", date)
	}
	return o
}
