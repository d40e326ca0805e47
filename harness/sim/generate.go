package sim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// Provider names, as the gateway's normalize package spells them.
const (
	OpenLoyalty = normalize.OpenLoyalty
	Sublytics   = normalize.Sublytics
	USAePay     = normalize.USAePay
)

// Providers lists the simulated providers in a stable order.
var Providers = []string{OpenLoyalty, Sublytics, USAePay}

// EventTypes lists every event type the provider documents name; it is the
// normalize package's list, shared so the simulator covers exactly what
// the gateway documents. Treat it as read-only.
var EventTypes = normalize.EventTypes

// BatchTypes are the loyalty event types whose data may be a JSON array.
var BatchTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range normalize.LoyaltyBatchTypes {
		m[t] = true
	}
	return m
}()

// providerTimeLayout is the zone-less layout of the subscription and payment
// providers' timestamps.
const providerTimeLayout = "2006-01-02 15:04:05"

// Key is what the gateway deduplicates an expected event by. For a provider
// with event ids it is the canonical (source, id). For a provider whose ids
// the gateway derives (normalize.DerivesIDs) Content is set and ID is the
// item's content key (normalize.ContentKey): every event the gateway
// accepts for it gets an id of its own that begins with the key's first 32
// digits (normalize.DerivedFrom).
type Key struct {
	Source  string `json:"source"`
	ID      string `json:"id"`
	Content bool   `json:"content,omitempty"`
}

// String is "source/id", or "source/<first 32 digits>-*" for a content key:
// the shape of the ids delivered for it.
func (k Key) String() string {
	if k.Content && len(k.ID) > 32 {
		return k.Source + "/" + k.ID[:32] + "-*"
	}
	return k.Source + "/" + k.ID
}

// Event is one provider request body the simulator can send.
type Event struct {
	Provider string
	Type     string
	Body     []byte
	// ProviderID is the provider's own event id ("" for the loyalty
	// platform, which sends none).
	ProviderID string
	// Items is the number of canonical events the body stands for: the
	// length of a loyalty batch, otherwise 1.
	Items int

	doc any
}

// GenOptions tune the generated payloads.
type GenOptions struct {
	// Seed makes type picks, amounts and layouts reproducible; ids stay
	// fresh regardless (from crypto/rand and the clock), because the
	// gateway's store outlives a run and would see a replayed id as a
	// duplicate. 0 picks a random seed.
	Seed uint64
	// Location is the zone the subscription and payment providers'
	// zone-less timestamps are written in; nil means UTC.
	Location *time.Location
	// SublyticsStartID is the first subscription event id; 0 derives one
	// from the clock so consecutive runs do not collide.
	SublyticsStartID uint64
	// The shares below are probabilities in [0,1]; 0 takes the default
	// NewGenerator documents, a negative value means never.

	// BatchShare is the share of batch-capable loyalty events sent with
	// data as an array; BatchMax bounds the array's length (default 5).
	BatchShare float64
	BatchMax   int
	// CreatedAtShare is the share of loyalty events carrying createdAt.
	// The open-source sender never writes it, so the default is none; the
	// documents' examples show it on a few types.
	CreatedAtShare float64
	// Customers is the size of the loyalty platform's customer pool
	// (default 50). Every loyalty body names pooled entities only, so a
	// small pool makes identical bodies common.
	Customers int
	// NumericIDShare is the share of subscription events whose
	// webhook_event_id is a JSON number (API v2) rather than a string.
	NumericIDShare float64
	// ZeroDateShare is the share of subscription events dated
	// "0000-00-00 00:00:00" (no date).
	ZeroDateShare float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Generator builds realistic provider bodies. It is safe for concurrent use.
type Generator struct {
	opts  GenOptions
	mu    sync.Mutex
	rng   *mrand.Rand
	subID atomic.Uint64
	// loyaltyZone is the offset the loyalty platform writes its times in.
	loyaltyZone *time.Location
	pools       *loyaltyPools
}

// NewGenerator returns a generator. A zero share takes its default (20%
// loyalty batches of up to 5 items, no loyalty createdAt, numeric
// subscription ids on half of them, 2% zero subscription dates); a negative
// share turns the feature off.
func NewGenerator(opts GenOptions) *Generator {
	def := func(p *float64, d float64) {
		switch {
		case *p == 0:
			*p = d
		case *p < 0:
			*p = 0
		}
	}
	def(&opts.BatchShare, 0.2)
	def(&opts.CreatedAtShare, 0)
	def(&opts.NumericIDShare, 0.5)
	def(&opts.ZeroDateShare, 0.02)
	if opts.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, c := range b {
			opts.Seed = opts.Seed<<8 | uint64(c)
		}
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.BatchMax <= 1 {
		opts.BatchMax = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Customers <= 0 {
		opts.Customers = 50
	}
	g := &Generator{
		opts:        opts,
		rng:         mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		loyaltyZone: time.FixedZone("", 2*3600),
	}
	g.pools = newLoyaltyPools(g.rng, opts.Customers)
	start := opts.SublyticsStartID
	if start == 0 {
		// Milliseconds since the epoch stay far below 2^53, so the id is
		// exact as a JSON number too.
		start = uint64(opts.Now().UnixMilli())
	}
	g.subID.Store(start - 1)
	return g
}

// Generate builds one event of the given provider and type.
func (g *Generator) Generate(provider, eventType string) (*Event, error) {
	if !slices.Contains(EventTypes[provider], eventType) {
		return nil, fmt.Errorf("unknown %s event type %q", provider, eventType)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch provider {
	case OpenLoyalty:
		return g.loyalty(eventType), nil
	case Sublytics:
		return g.sublytics(eventType), nil
	default:
		return g.usaepay(eventType), nil
	}
}

// Redelivery returns the same logical event as e (same provider id, same
// loyalty data) in a different encoding: another key order and layout, and
// for the subscription platform the id in its other JSON form. A gateway
// must answer it as a duplicate.
func (g *Generator) Redelivery(e *Event) *Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	doc := clone(e.doc).(obj)
	if e.Provider == Sublytics {
		switch v := doc.get("webhook_event_id").(type) {
		case string:
			n, _ := strconv.ParseUint(v, 10, 64)
			doc = doc.set("webhook_event_id", n)
		default:
			doc = doc.set("webhook_event_id", e.ProviderID)
		}
	}
	body := marshalShuffled(doc, g.rng)
	return &Event{Provider: e.Provider, Type: e.Type, Body: body, ProviderID: e.ProviderID, Items: e.Items, doc: doc}
}

func (g *Generator) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// recent returns a time within the last minute, to the second, as providers
// write them.
func (g *Generator) recent() time.Time {
	return g.opts.Now().Add(-time.Duration(g.rng.IntN(60)) * time.Second).Truncate(time.Second)
}

// money formats cents the way both the subscription and payment providers
// do: a decimal string with two places.
func money(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func (g *Generator) cents(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }

func newUUID() string { return uuid.NewString() }

// ---- loyalty platform ----

// member is one of the loyalty platform's customers. Loyalty bodies name
// existing customers, levels, campaigns and transactions and carry nothing
// unique to the notification, so the simulator draws every id from pools
// made once per generator: the same customer comes back, and two bodies can
// be byte for byte identical, as they are from the real sender.
type member struct {
	id, first, last, email, phone, card string
}

type level struct{ id, name string }

// loyaltyPools are the entities the simulated platform knows.
type loyaltyPools struct {
	members      []member
	levels       []level
	campaigns    []string
	transactions []string
	transfers    []string
	accounts     map[string]string // customer id -> account id
	pos          string
}

func newLoyaltyPools(r *mrand.Rand, customers int) *loyaltyPools {
	p := &loyaltyPools{accounts: map[string]string{}, pos: newUUID()}
	firsts := []string{"Jon", "Anna", "Piotr", "Maria", "Li", "Sam", "Jane", "Ola"}
	lasts := []string{"Doe", "Kowalska", "Smith", "Nguyen", "Garcia", "Jones"}
	for i := range customers {
		id := newUUID()
		first, last := firsts[r.IntN(len(firsts))], lasts[r.IntN(len(lasts))]
		p.members = append(p.members, member{
			id: id, first: first, last: last,
			email: strings.ToLower(first+"."+last) + "." + strconv.Itoa(i) + "@example.com",
			phone: "+48" + strconv.Itoa(500000000+r.IntN(99999999)),
			card:  strconv.Itoa(100000000 + r.IntN(899999999)),
		})
		p.accounts[id] = newUUID()
	}
	for _, name := range []string{"Bronze", "Silver", "Gold", "Platinum"} {
		p.levels = append(p.levels, level{id: newUUID(), name: name})
	}
	for range 8 {
		p.campaigns = append(p.campaigns, newUUID())
	}
	for range 4 * customers {
		p.transactions = append(p.transactions, newUUID())
		p.transfers = append(p.transfers, newUUID())
	}
	return p
}

func pick[T any](r *mrand.Rand, s []T) T { return s[r.IntN(len(s))] }

func (g *Generator) loyalty(t string) *Event {
	items := 1
	batch := BatchTypes[t] && g.chance(g.opts.BatchShare)
	if batch {
		items = min(2+g.rng.IntN(g.opts.BatchMax-1), len(g.pools.members))
	}
	var data any
	if batch {
		// One notification per customer: a batch never names a
		// customer twice.
		arr := make([]any, items)
		for i, k := range g.rng.Perm(len(g.pools.members))[:items] {
			arr[i] = g.loyaltyData(t, g.pools.members[k])
		}
		data = arr
	} else {
		data = g.loyaltyData(t, pick(g.rng, g.pools.members))
	}
	doc := obj{{"type", t}}
	// The open-source sender never writes createdAt; the documents'
	// examples show it on a few types, so it stays an option.
	if g.chance(g.opts.CreatedAtShare) {
		doc = append(doc, kv{"createdAt", g.recent().In(g.loyaltyZone).Format(time.RFC3339)})
	}
	doc = append(doc, kv{"data", data})
	return &Event{Provider: OpenLoyalty, Type: t, Body: marshalDoc(doc, "    "), Items: items, doc: doc}
}

// loyaltyData builds one data object for customer c with the member names
// the open-source sender uses (its webhook listeners and notifiers), which
// differ from the documents' examples in places: snake_case in the points
// change, customerEmail and points/pointsWillExpire in the expiring points
// notice, coupon/couponExpiresAt/couponStatus in the coupon notice, and
// futureLevelId/futureLevelName in the level notice.
func (g *Generator) loyaltyData(t string, c member) obj {
	p := g.pools
	ts := func(d time.Duration) string { return g.recent().Add(d).In(g.loyaltyZone).Format(time.RFC3339) }
	lvl := g.rng.IntN(len(p.levels))
	contact := obj{
		{"customerId", c.id}, {"customerEmail", c.email}, {"customerPhone", c.phone},
		{"customerLoyaltyCardNumber", c.card}, {"customerFirstName", c.first}, {"customerLastName", c.last},
	}
	switch t {
	case "customer.updated", "customer.deleted", "customer.deactivated":
		return obj{{"customerId", c.id}}
	case "customer.registered":
		return obj{
			{"customerId", c.id},
			{"data", obj{
				{"firstName", c.first},
				{"lastName", c.last},
				{"gender", []string{"male", "female", "not_disclosed"}[g.rng.IntN(3)]},
				{"email", c.email},
				{"phone", c.phone},
				{"levelAchievementDate", ts(0)},
				{"createdAt", g.recent().Unix()},
				{"address", obj{
					{"street", "Streets"}, {"address1", strconv.Itoa(1 + g.rng.IntN(200))}, {"address2", "3"},
					{"postal", "41-222"}, {"city", "Glasgow"}, {"province", "Glasgow"}, {"country", "GB"},
				}},
				{"company", obj{{"name", "Hydropol"}, {"nip", "123"}}},
				{"loyaltyCardNumber", c.card},
				{"labels", []any{obj{{"key", "labels_key"}, {"value", strconv.Itoa(g.rng.IntN(10))}}}},
				{"agreement1", true},
				{"agreement2", g.rng.IntN(2) == 0},
				{"agreement3", false},
				{"referral_customer_email", nil},
				{"levelId", p.levels[0].id},
				{"posId", p.pos},
			}},
		}
	case "customer.level_changed_automatically":
		return obj{
			{"customerId", c.id},
			{"levelId", p.levels[lvl].id},
			{"levelName", p.levels[lvl].name},
			{"levelMove", []string{"up", "down"}[g.rng.IntN(2)]},
			{"levelAchievementDate", ts(0)},
		}
	case "customer.level_changed":
		return obj{
			{"customerId", c.id},
			{"levelId", p.levels[lvl].id},
			{"levelName", p.levels[lvl].name},
			{"levelAchievementDate", ts(0)},
		}
	case "transaction.registered":
		qty := 1 + g.rng.IntN(3)
		price := g.cents(500, 20000) / 100
		return obj{
			{"transactionId", pick(g.rng, p.transactions)},
			{"transactionData", obj{
				{"documentType", "sell"},
				{"documentNumber", strconv.Itoa(g.rng.IntN(100000))},
				{"purchasePlace", nil},
				{"purchaseDate", ts(0)},
			}},
			{"customerData", obj{
				{"name", c.first + " " + c.last}, {"email", c.email}, {"phone", nil},
				{"loyaltyCardNumber", c.card}, {"nip", "123"},
				{"address", obj{
					{"street", "Bridges"}, {"address1", "12"}, {"address2", "3"}, {"postal", "41-222"},
					{"city", "New york"}, {"province", "NY"}, {"country", "US"},
				}},
			}},
			{"items", []any{obj{
				{"sku", obj{{"code", "sku" + strconv.Itoa(g.rng.IntN(10000))}}},
				{"name", "product_name"},
				{"quantity", qty},
				{"grossValue", qty * price},
				{"category", []string{"Women", "Men", "Kids"}[g.rng.IntN(3)]},
				{"maker", "Exclusive"},
				{"labels", []any{}},
			}}},
			{"posId", nil},
		}
	case "transaction.assigned_to_customer":
		return obj{{"transactionId", pick(g.rng, p.transactions)}, {"customerId", c.id}, {"grossValue", g.cents(1, 500)}}
	case "account.available_points_amount_changed":
		change := 1 + g.rng.IntN(200)
		return obj{
			{"customerId", c.id},
			{"amount", change + g.rng.IntN(5000)},
			{"amount_change", change},
			{"amount_change_type", []string{"add", "subtract"}[g.rng.IntN(2)]},
		}
	case "customer.bought_campaign":
		return obj{
			{"storeCode", "DEFAULT"},
			{"customerId", c.id},
			{"campaignId", pick(g.rng, p.campaigns)},
			{"costInPoints", float64(1+g.rng.IntN(50)) + 0.5*float64(g.rng.IntN(2))},
			{"couponCode", strconv.Itoa(100 + g.rng.IntN(900))},
		}
	case "account.expiring_points_notification":
		return append(contact,
			kv{"points", float64(1+g.rng.IntN(2000)) + 0.5*float64(g.rng.IntN(2))},
			kv{"pointsWillExpire", ts(7 * 24 * time.Hour)},
		)
	case "account.points_transfer":
		return obj{
			{"storeCode", "DEFAULT"},
			{"accountId", p.accounts[c.id]},
			{"customerId", c.id},
			{"customerFirstName", c.first},
			{"customerLastName", c.last},
			{"customerEmail", c.email},
			{"customerPhone", c.phone},
			{"createdAt", ts(0)},
			{"pointsTransferId", pick(g.rng, p.transfers)},
			{"expiresAt", ts(365 * 24 * time.Hour)},
			{"value", 1 + g.rng.IntN(1000)},
			{"issuer", []string{"admin", "system", "partner"}[g.rng.IntN(3)]},
			{"type", []string{"adding", "spending", "p2p_adding", "p2p_spending"}[g.rng.IntN(4)]},
			{"state", "active"},
		}
	case "account.expiring_level_notification":
		next := p.levels[min(lvl+1, len(p.levels)-1)]
		return append(contact,
			kv{"levelId", p.levels[lvl].id},
			kv{"levelName", p.levels[lvl].name},
			kv{"futureLevelId", next.id},
			kv{"futureLevelName", next.name},
		)
	default: // campaign.coupon_expiration
		return obj{
			{"customerId", c.id},
			{"customerEmail", c.email},
			{"customerLoyaltyCardNumber", c.card},
			{"customerPhone", c.phone},
			{"coupon", randString(g.rng, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 10)},
			{"couponExpiresAt", g.recent().Add(24 * time.Hour).Unix()},
			{"couponStatus", "active"},
		}
	}
}

// ---- subscription platform ----

// sublyticsObject maps an event to its webhook_type: the key under
// webhook_data that holds the object.
func sublyticsObject(event string) string {
	if t, ok := normalize.SublyticsObjectTypes[event]; ok {
		return t
	}
	return "transaction"
}

func (g *Generator) sublytics(event string) *Event {
	id := g.subID.Add(1)
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

// ---- payment gateway ----

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
