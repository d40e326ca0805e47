package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRetrySchedule(t *testing.T) {
	var total time.Duration
	for _, d := range USAePayRetrySchedule {
		total += d
	}
	if len(USAePayRetrySchedule) != 35 || total != 72*time.Hour {
		t.Fatalf("%d retries over %v, want 35 over 72h", len(USAePayRetrySchedule), total)
	}
	// The boundaries between the four steps of the documented schedule.
	for i, want := range map[int]time.Duration{0: 5 * time.Minute, 11: 5 * time.Minute, 12: time.Hour, 22: time.Hour, 23: 3 * time.Hour, 26: 3 * time.Hour, 27: 6 * time.Hour, 34: 6 * time.Hour} {
		if USAePayRetrySchedule[i] != want {
			t.Errorf("retry %d after %v, want %v", i+1, USAePayRetrySchedule[i], want)
		}
	}
	p := RetryPolicy{}
	if d, ok := p.Delay(1); !ok || d != 5*time.Minute/DefaultRetryScale {
		t.Fatalf("first delay %v %v", d, ok)
	}
	if d, ok := p.Delay(35); !ok || d != 6*time.Second {
		t.Fatalf("last delay %v %v", d, ok)
	}
	if _, ok := p.Delay(36); ok {
		t.Fatal("a 37th attempt")
	}
	if _, ok := (RetryPolicy{Attempts: 3}).Delay(3); ok {
		t.Fatal("Attempts 3 allowed a 4th attempt")
	}
	if d, _ := (RetryPolicy{Scale: 60}).Delay(13); d != time.Minute {
		t.Fatalf("an hour at scale 60 is %v", d)
	}
}

// TestUSAePayFollowsSchedule runs the whole 72-hour schedule against a
// gateway that always fails, 3,600,000 times faster than real time.
func TestUSAePayFollowsSchedule(t *testing.T) {
	stub, srv := newStub(t)
	stub.status = func(string, []byte) int { return http.StatusServiceUnavailable }
	retry := RetryPolicy{Scale: 3600 * 1000}
	s := run(t, Config{BaseURL: srv.URL, Count: 2, Providers: map[string]ProviderConfig{USAePay: stub.cfg[USAePay]}, Retry: retry})
	byEvent := map[int64][]Send{}
	for _, sd := range s.Sends() {
		byEvent[sd.Event] = append(byEvent[sd.Event], sd)
	}
	for ev, sends := range byEvent {
		if len(sends) != 36 {
			t.Fatalf("event %d: %d attempts, want 36", ev, len(sends))
		}
		slices.SortFunc(sends, func(a, b Send) int { return a.Attempt - b.Attempt })
		for i := 1; i < len(sends); i++ {
			want, _ := retry.Delay(i)
			// A timer never fires early: each retry starts at least its
			// scheduled delay after the failed attempt ended.
			if gap := sends[i].Start.Sub(sends[i-1].Start.Add(sends[i-1].Latency)); gap < want {
				t.Fatalf("retry %d came %v after the failure, want at least %v", i, gap, want)
			}
		}
	}
}

var uuidRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestLoyaltyBodiesAsSent checks the member names of the open-source
// sender, the missing createdAt, and that every id in an item is a pooled
// entity, so identical bodies recur.
func TestLoyaltyBodiesAsSent(t *testing.T) {
	g := NewGenerator(GenOptions{Seed: 5, Customers: 4, BatchShare: 0.5})
	want := map[string][]string{
		"account.available_points_amount_changed": {"customerId", "amount", "amount_change", "amount_change_type"},
		"account.expiring_points_notification":    {"customerId", "customerEmail", "points", "pointsWillExpire"},
		"campaign.coupon_expiration":              {"customerId", "customerEmail", "coupon", "couponExpiresAt", "couponStatus"},
		"account.expiring_level_notification":     {"customerId", "customerEmail", "levelId", "levelName", "futureLevelId", "futureLevelName"},
		"customer.updated":                        {"customerId"},
	}
	absent := []string{"amountChange", "email", "pointsAmount", "couponCode", "couponExpirationDate", "levelExpirationDate"}
	uuids := map[string]bool{}
	bodies := map[string]int{}
	for _, typ := range EventTypes[OpenLoyalty] {
		for range 40 {
			ev, err := g.Generate(OpenLoyalty, typ)
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, ev.Body)
			if _, ok := m["createdAt"]; ok {
				t.Fatalf("createdAt sent: %s", ev.Body)
			}
			items := []any{m["data"]}
			if arr, ok := m["data"].([]any); ok {
				items = arr
			}
			for _, it := range items {
				o := it.(map[string]any)
				for _, k := range want[typ] {
					if _, ok := o[k]; !ok {
						t.Fatalf("%s lacks %s: %s", typ, k, ev.Body)
					}
				}
				if len(want[typ]) > 0 && len(o) < len(want[typ]) {
					t.Fatalf("%s: %s", typ, ev.Body)
				}
				for _, k := range absent {
					if _, ok := o[k]; ok && slices.Contains([]string{"account.available_points_amount_changed", "account.expiring_points_notification", "campaign.coupon_expiration", "account.expiring_level_notification"}, typ) {
						t.Fatalf("%s has the documents' %s, not the sender's name: %s", typ, k, ev.Body)
					}
				}
				if typ == "campaign.coupon_expiration" {
					if _, ok := o["couponExpiresAt"].(json.Number); !ok {
						t.Fatalf("couponExpiresAt is not a Unix time: %s", ev.Body)
					}
				}
			}
			for _, u := range uuidRe.FindAllString(string(ev.Body), -1) {
				uuids[u] = true
			}
			bodies[typ+string(ev.Body)]++
		}
	}
	// 4 customers and their accounts, 4 levels, 8 campaigns, 16
	// transactions and 16 transfers, one point of sale.
	if n := len(uuids); n > 4+4+4+8+16+16+1 {
		t.Fatalf("%d distinct UUIDs in loyalty bodies: items carry fresh ones", n)
	}
	var repeated int
	for b, n := range bodies {
		if strings.Contains(b, `"customer.updated"`) && n > 1 {
			repeated++
		}
	}
	if repeated == 0 {
		t.Fatal("40 customer.updated bodies for 4 customers never repeat")
	}
}

func TestRepeatsAfterTheWindow(t *testing.T) {
	stub, srv := newStub(t)
	p := stub.cfg[OpenLoyalty]
	p.Types = []string{"customer.updated", "customer.registered"}
	p.DedupWindow = 50 * time.Millisecond
	s := run(t, Config{BaseURL: srv.URL, Count: 10, Providers: map[string]ProviderConfig{OpenLoyalty: p}, RepeatShare: 1})
	if got := s.Config().RepeatAfter; got != 550*time.Millisecond {
		t.Fatalf("default repeat_after %v, want the window plus 500ms", got)
	}
	orig := map[int64]Send{}
	var repeats []Send
	for _, sd := range s.Sends() {
		switch sd.Kind {
		case Original:
			orig[sd.Event] = sd
		case Repeat:
			repeats = append(repeats, sd)
		}
		if sd.DedupWindow != 50*time.Millisecond || len(sd.Keys) != 1 || !sd.Keys[0].Content {
			t.Fatalf("send %+v", sd)
		}
	}
	if len(repeats) != 5 {
		t.Fatalf("%d repeats, want one per customer.updated (5)", len(repeats))
	}
	for _, r := range repeats {
		o := orig[r.Event]
		if o.Type != "customer.updated" || !bytes.Equal(o.Body, r.Body) || r.Keys[0] != o.Keys[0] {
			t.Fatalf("repeat %s is not its original %s", r.Body, o.Body)
		}
		if r.Start.Sub(o.Start) < 550*time.Millisecond {
			t.Fatalf("repeat after %v", r.Start.Sub(o.Start))
		}
	}
	for _, cfg := range []Config{
		{BaseURL: srv.URL, Providers: map[string]ProviderConfig{OpenLoyalty: {}}, RepeatShare: 0.5, RepeatAfter: DefaultDedupWindow},
		{BaseURL: srv.URL, Providers: map[string]ProviderConfig{USAePay: {}}, Retry: RetryPolicy{Attempts: 37}},
		{BaseURL: srv.URL, Providers: map[string]ProviderConfig{USAePay: {}}, Retry: RetryPolicy{Scale: -1}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
