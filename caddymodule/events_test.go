package caddymodule

import (
	"context"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// storeIn inserts rec with a delivery to its source (unless it names its
// deliveries) and drives each delivery to status through the store's
// transitions, as the delivery engine would: claimed, then one attempt
// deciding retrying, delivered or dead. Reserved makes it a sync
// delivery in flight. raw is the request body stored (default {}).
func storeIn(t testing.TB, db store.Store, rec *store.Record, status store.Status, raw ...string) {
	t.Helper()
	ctx := context.Background()
	if len(rec.Deliveries) == 0 {
		rec.Deliveries = []store.Delivery{{Destination: rec.Source}}
	}
	if status == store.StatusReserved {
		rec.Deliveries[0].Status = store.StatusReserved
	}
	body := "{}"
	if len(raw) > 0 {
		body = raw[0]
	}
	res, err := db.Insert(ctx, &store.Ingest{RawBody: []byte(body), Records: []*store.Record{rec}}, true)
	if err != nil || !res[0].Inserted {
		t.Fatalf("insert %s %s: %v %+v", rec.Source, rec.ID, err, res)
	}
	var dec store.Decision
	code := 500
	switch status {
	case store.StatusRetrying:
		dec = store.RetryAt(time.Now().Add(time.Hour))
	case store.StatusDelivered:
		dec, code = store.Delivered(), 200
	case store.StatusDead:
		dec, code = store.Dead(store.DeadGone), 410
	default:
		return
	}
	for _, d := range rec.Deliveries {
		for claimedIt := false; !claimedIt; {
			claimed, err := db.Claim(ctx, "test", []string{d.Destination}, time.Now().Add(time.Hour), time.Minute, 1000)
			if err != nil || len(claimed) == 0 {
				t.Fatalf("claiming %s %s to %s: %v", rec.Source, rec.ID, d.Destination, err)
			}
			for _, c := range claimed {
				if c.Record.Source == rec.Source && c.Record.ID == rec.ID {
					claimedIt = true
					continue
				}
				if err := db.ReleaseLease(ctx, c.Record.Source, c.Record.ID, c.Destination, "test"); err != nil {
					t.Fatal(err)
				}
			}
		}
		a := store.Attempt{Number: 1, At: rec.ReceivedAt.Add(time.Second), Status: code}
		if err := db.RecordAttempt(ctx, rec.Source, rec.ID, d.Destination, "test", a, dec); err != nil {
			t.Fatal(err)
		}
	}
}
