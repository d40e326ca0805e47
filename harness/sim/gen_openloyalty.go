package sim

import (
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// OpenLoyalty is the loyalty platform, as normalize names it.
const OpenLoyalty = normalize.OpenLoyalty

// EnvLoyaltyHeaderValue is read when --loyalty-header-value is not given.
const EnvLoyaltyHeaderValue = "WEBHOOK_LOYALTY_HEADER_VALUE"

// The loyalty platform sends one attempt with a 1 s total timeout and
// never retries; its bodies name pooled entities, so a real second update
// can repeat a body byte for byte.
func init() {
	Register(Provider{
		Name:     OpenLoyalty,
		Generate: (*Generator).loyalty,
		State: func(g *Generator) any {
			return &loyaltyState{loyaltyPools: newLoyaltyPools(g.rng, g.opts.Customers), zone: time.FixedZone("", 2*3600)}
		},
		Timeout: func(cfg *Config) time.Duration { return cfg.LoyaltyTimeout },
		Repeats: RepeatTypes,
		Options: []Option{
			{Name: "loyalty-header", Type: "string", Usage: "loyalty platform's custom header name",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.HeaderName = v
					}
					return nil
				}},
			{Name: "loyalty-header-value", Type: "string", Env: EnvLoyaltyHeaderValue, Usage: "loyalty platform's custom header value",
				Apply: func(_ *Config, pc *ProviderConfig, v string) error {
					if pc != nil {
						pc.HeaderValue = v
					}
					return nil
				}},
			{Name: "loyalty-timeout", Type: "duration", Default: "1s", Usage: "loyalty platform: total timeout of its single attempt",
				Apply: func(cfg *Config, _ *ProviderConfig, v string) error { return parseOption(&cfg.LoyaltyTimeout, v) }},
			{Name: "batch-share", Type: "float", Default: "0.2", Usage: "share of batch-capable loyalty events sent as an array (0-1)",
				Apply: func(cfg *Config, _ *ProviderConfig, v string) error {
					if err := parseOption(&cfg.Gen.BatchShare, v); err != nil {
						return err
					}
					if cfg.Gen.BatchShare == 0 {
						cfg.Gen.BatchShare = -1 // GenOptions' zero is the default
					}
					return nil
				}},
			{Name: "batch-max", Type: "int", Default: "5", Usage: "most items in a loyalty batch",
				Apply: func(cfg *Config, _ *ProviderConfig, v string) error { return parseOption(&cfg.Gen.BatchMax, v) }},
		},
	})
}

// BatchTypes are the loyalty event types whose data may be a JSON array.
var BatchTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range normalize.LoyaltyBatchTypes {
		m[t] = true
	}
	return m
}()

// RepeatTypes are the loyalty event types whose bodies carry no field
// unique to the notification in the open-source sender, so that a real
// second update is byte for byte the first one again. Config.RepeatShare
// repeats these.
var RepeatTypes = []string{
	"customer.updated",
	"customer.deactivated",
	"customer.level_changed",
	"account.available_points_amount_changed",
}

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

// loyaltyState is the simulated platform's: its entities, and the offset
// it writes its times in.
type loyaltyState struct {
	*loyaltyPools
	zone *time.Location
}

func (g *Generator) loyalty(t string) *Event {
	st := g.State(OpenLoyalty).(*loyaltyState)
	items := 1
	batch := BatchTypes[t] && g.chance(g.opts.BatchShare)
	if batch {
		items = min(2+g.rng.IntN(g.opts.BatchMax-1), len(st.members))
	}
	var data any
	if batch {
		// One notification per customer: a batch never names a
		// customer twice.
		arr := make([]any, items)
		for i, k := range g.rng.Perm(len(st.members))[:items] {
			arr[i] = g.loyaltyData(st, t, st.members[k])
		}
		data = arr
	} else {
		data = g.loyaltyData(st, t, pick(g.rng, st.members))
	}
	doc := obj{{"type", t}}
	// The open-source sender never writes createdAt; the documents'
	// examples show it on a few types, so it stays an option.
	if g.chance(g.opts.CreatedAtShare) {
		doc = append(doc, kv{"createdAt", g.recent().In(st.zone).Format(time.RFC3339)})
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
func (g *Generator) loyaltyData(st *loyaltyState, t string, c member) obj {
	p := st.loyaltyPools
	ts := func(d time.Duration) string { return g.recent().Add(d).In(st.zone).Format(time.RFC3339) }
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
