package ops_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// engines open the target of a test on each store engine; PostgreSQL's
// skips without a server (see pgtest.DSN).
var engines = map[string]func(t *testing.T) ops.Target{
	"badger": func(t *testing.T) ops.Target { return newTarget(t) },
	"postgres": func(t *testing.T) ops.Target {
		dsn := pgtest.DSN(t)
		db, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: pgtest.Schema(t, dsn), Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		tg := newTarget(t)
		tg.Store = db
		return tg
	},
}

// insertLane stores an event with one delivery to destination in lane.
func insertLane(t *testing.T, tg ops.Target, id, destination, lane string, at time.Time) {
	t.Helper()
	rec := &store.Record{Source: "/usaepay", ID: id, Provider: "usaepay", Type: "transaction.sale.success", ReceivedAt: at,
		Subject: lane, Event: []byte(`{}`), Deliveries: []store.Delivery{{Destination: destination, Lane: lane}}}
	if _, err := tg.Store.Insert(context.Background(), &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, false); err != nil {
		t.Fatal(err)
	}
}

// TestParkedLanesAndSkip: a lane whose head is dead is parked; the
// destinations view counts it, the lanes view names its head and what
// waits behind it, and a skip settles the head so the lane goes on,
// waking the destination's workers.
func TestParkedLanesAndSkip(t *testing.T) {
	for name, open := range engines {
		t.Run(name, func(t *testing.T) { testParkedLanesAndSkip(t, open(t)) })
	}
}

func testParkedLanesAndSkip(t *testing.T, tg ops.Target) {
	ctx := context.Background()
	var woken []string
	tg.Wake = func(d string) { woken = append(woken, d) }
	tg.Destinations = func() []ops.LiveDestination {
		return []ops.LiveDestination{{Name: "orders", Breaker: "open", Rate: 2}, {Name: "ledger", Breaker: "closed", PausedByOperator: true}, {Name: "idle", Breaker: "closed"}}
	}
	at := time.Now().Add(-time.Hour)
	insertLane(t, tg, "sale-1", "orders", "tx-1", at)
	insertLane(t, tg, "void-1", "orders", "tx-1", at.Add(time.Second))
	insertLane(t, tg, "refund-1", "orders", "tx-1", at.Add(2*time.Second))
	insertLane(t, tg, "sale-2", "orders", "tx-2", at.Add(3*time.Second))
	insert(t, tg, "/usaepay", "plain", store.StatusDead, at.Add(4*time.Second), "ledger")
	kill(t, tg.Store, "/usaepay", "sale-1", "orders")

	ds, err := ops.Destinations(ctx, tg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ops.DestinationView{}
	for _, d := range ds.Destinations {
		got[d.Name] = d
	}
	if o := got["orders"]; o.State != ops.StatePaused || o.QueueDepth != 3 || o.Dead != 1 || o.ParkedLanes != 1 || o.Rate != 2 {
		t.Errorf("orders: %+v; want paused (breaker open), 3 waiting, 1 dead, 1 parked lane", o)
	}
	if l := got["ledger"]; l.State != ops.StatePaused || l.Dead != 1 || l.ParkedLanes != 0 {
		t.Errorf("ledger: %+v; want paused by the operator, 1 dead, no lane", l)
	}
	if i := got["idle"]; i.State != ops.StateHealthy || i.QueueDepth != 0 {
		t.Errorf("idle: %+v", i)
	}
	if len(ds.Destinations) != 3 || ds.Destinations[0].Name != "idle" {
		t.Errorf("destinations not sorted by name: %+v", ds.Destinations)
	}

	lanes, err := ops.Lanes(ctx, tg, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(lanes.Lanes) != 1 || !lanes.BehindCounted {
		t.Fatalf("lanes: %+v", lanes)
	}
	if l := lanes.Lanes[0]; l.Key != "tx-1" || l.Head.ID != "sale-1" || l.Sequence != 1 || l.Behind != 2 || l.DeadReason != store.DeadAttemptsExhausted {
		t.Errorf("parked lane: %+v; want tx-1 held by sale-1 (sequence 1), 2 behind", l)
	}

	if _, err := ops.Skip(ctx, tg, "/usaepay", "void-1", "orders"); !errors.Is(err, ops.ErrConflict) {
		t.Errorf("skip of a pending delivery: %v, want ErrConflict", err)
	}
	if _, err := ops.Skip(ctx, tg, "/usaepay", "sale-1", "ledger"); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("skip of a delivery the event has not: %v, want ErrNotFound", err)
	}
	res, err := ops.Skip(ctx, tg, "/usaepay", "sale-1", "orders")
	if err != nil || res.Event.Status != store.StatusSkipped || fmt.Sprint(woken) != "[orders]" {
		t.Fatalf("skip: %+v %v, woke %v", res, err, woken)
	}
	if lanes, err := ops.Lanes(ctx, tg, "orders"); err != nil || len(lanes.Lanes) != 0 {
		t.Errorf("lanes after the skip: %+v %v", lanes, err)
	}
	// The lane goes on: its next delivery is claimable.
	claimed, err := tg.Store.Claim(ctx, "w", []string{"orders"}, time.Now(), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range claimed {
		ids[c.Record.ID] = true
	}
	if !ids["void-1"] || ids["refund-1"] || !ids["sale-2"] {
		t.Errorf("claimed after the skip: %v; want void-1 (next in tx-1) and sale-2, not refund-1", ids)
	}
}

// TestReplaySelectsDeliveries: replaying an event sends each delivery not
// yet delivered, or the one named; by filter with a destination, that
// destination's only.
func TestReplaySelectsDeliveries(t *testing.T) {
	for name, open := range engines {
		t.Run(name, func(t *testing.T) { testReplaySelectsDeliveries(t, open(t)) })
	}
}

func testReplaySelectsDeliveries(t *testing.T, tg ops.Target) {
	ctx := context.Background()
	tg.Replayer = func(destination string) (ops.Replayer, error) { return namedReplayer(destination), nil }
	at := time.Now().Add(-time.Hour)
	insert(t, tg, "/usaepay", "fan", store.StatusPending, at, "a", "b", "c")
	kill(t, tg.Store, "/usaepay", "fan", "b")

	res, err := ops.Replay(ctx, tg, "/usaepay", "fan", "", "", true)
	if err != nil || len(res.Results) != 3 || res.Delivered != 3 {
		t.Fatalf("replay of an event none of whose deliveries is delivered: %+v %v", res, err)
	}
	res, err = ops.Replay(ctx, tg, "/usaepay", "fan", "b", "", true)
	if err != nil || len(res.Results) != 1 || res.Results[0].Destination != "b" {
		t.Fatalf("replay of the delivery to b: %+v %v", res, err)
	}
	bulk, err := ops.ReplayMatching(ctx, tg, store.Filter{Destination: "b", Status: store.StatusDead}, "", 0, true)
	if err != nil || bulk.Matched != 1 || len(bulk.Results) != 1 || bulk.Results[0].Destination != "b" {
		t.Fatalf("replay of b's dead deliveries: %+v %v", bulk, err)
	}
	list, err := ops.List(ctx, tg, store.Filter{Destination: "b"})
	if err != nil || len(list.Events) != 1 || list.Events[0].Status != store.StatusDead || len(list.Events[0].Deliveries) != 3 {
		t.Fatalf("listing by destination b: %+v %v", list, err)
	}
}
