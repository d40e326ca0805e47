package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// claimOne claims the deliveries of destination due at now as owner and
// fails unless it gets exactly the one of (source, id).
func claimOne(t *testing.T, s store.Store, owner, destination, id string, now time.Time) store.Claimed {
	t.Helper()
	got, err := s.Claim(context.Background(), owner, []string{destination}, now, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].Record.ID != id || got[0].Destination != destination {
		t.Fatalf("claim for %s: %v %v, want %s", destination, claimedIDs(got), err, id)
	}
	if d := leased(got[0]); d.Destination != destination || d.LeaseOwner != owner {
		t.Fatalf("claim for %s leased %+v", destination, d)
	}
	return got[0]
}

// claimNone fails if a claim for destinations at now gets anything.
func claimNone(t *testing.T, s store.Store, destinations []string, now time.Time, why string) {
	t.Helper()
	got, err := s.Claim(context.Background(), "nobody", destinations, now, time.Minute, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("%s: claimed %v %v", why, claimedIDs(got), err)
	}
}

// statuses are the statuses of r's deliveries by destination.
func statuses(r *store.Record) map[string]store.Status {
	m := map[string]store.Status{}
	for _, d := range r.Deliveries {
		m[d.Destination] = d.Status
	}
	return m
}

// wantRecord fails unless (source, id) is stored with record status st and
// its deliveries in the given statuses.
func wantRecord(t *testing.T, s store.Store, source, id string, st store.Status, deliveries map[string]store.Status) *store.Record {
	t.Helper()
	got, err := s.Get(context.Background(), source, id)
	if err != nil {
		t.Fatalf("get %s %s: %v", source, id, err)
	}
	if got.Status != st || !maps.Equal(statuses(got), deliveries) {
		t.Fatalf("%s %s: status %s, deliveries %v; want %s, %v", source, id, got.Status, statuses(got), st, deliveries)
	}
	return got
}

// wantCounts fails unless Counts gives want for the statuses it names (and
// zero for every other status a record can have).
func wantCounts(t *testing.T, s store.Store, want map[store.Status]int) {
	t.Helper()
	c, err := s.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered,
		store.StatusReleased, store.StatusDead, store.StatusUnmatched} {
		n, ok := c[st]
		if !ok || n != want[st] {
			t.Fatalf("counts %v, want %v (every record status present)", c, want)
		}
	}
}

// wantDeliveryCounts fails unless DeliveryCounts gives want.
func wantDeliveryCounts(t *testing.T, s store.Store, want map[string]map[store.Status]int) {
	t.Helper()
	c, err := s.DeliveryCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(c, want, maps.Equal) {
		t.Fatalf("delivery counts %v, want %v", c, want)
	}
}

// testFanOut: one event to two destinations is claimed, failed, retried,
// delivered and replayed per destination; what happens to one delivery
// leaves the other alone, and the record's status, Counts and
// DeliveryCounts follow the roll-up.
func testFanOut(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	r := to("/pay", "sale", store.StatusPending, "crm", "ledger")
	r.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r.TraceState = "gw=1"
	mustInsert(t, b, single(r, "{}"), true)
	if r.Status != store.StatusPending {
		t.Fatalf("Insert set the record's status to %s, want pending", r.Status)
	}
	got := wantRecord(t, b, "/pay", "sale", store.StatusPending, map[string]store.Status{"crm": store.StatusPending, "ledger": store.StatusPending})
	if got.Deliveries[0].Destination != "crm" || got.Deliveries[1].Destination != "ledger" {
		t.Fatalf("deliveries not in the order given: %+v", got.Deliveries)
	}
	if got.TraceParent != r.TraceParent || got.TraceState != r.TraceState {
		t.Fatalf("trace context %q %q, want %q %q", got.TraceParent, got.TraceState, r.TraceParent, r.TraceState)
	}
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"crm": {store.StatusPending: 1}, "ledger": {store.StatusPending: 1}})

	// Each destination claims its own delivery, and only it: two owners
	// hold a lease on the one record at once.
	now := time.Now()
	crm := claimOne(t, b, "w-crm", "crm", "sale", now)
	claimOne(t, b, "w-ledger", "ledger", "sale", now)
	if d := crm.Record.Delivery("ledger"); d == nil || d.Status != store.StatusPending {
		t.Fatalf("the claimed record does not carry its other delivery: %+v", crm.Record.Deliveries)
	}
	claimNone(t, b, []string{"crm", "ledger"}, now, "both deliveries leased")

	// crm fails and is retried later; ledger is delivered.
	a1 := store.Attempt{Number: 1, At: now, Status: 503}
	if err := b.RecordAttempt(ctx, "/pay", "sale", "crm", "w-crm", a1, store.RetryAt(now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordAttempt(ctx, "/pay", "sale", "ledger", "w-ledger", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
		t.Fatal(err)
	}
	got = wantRecord(t, b, "/pay", "sale", store.StatusRetrying, map[string]store.Status{"crm": store.StatusRetrying, "ledger": store.StatusDelivered})
	if c := got.Delivery("crm"); len(c.Attempts) != 1 || c.Attempts[0].Status != 503 || !c.NextAttemptAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("crm delivery %+v", c)
	}
	if l := got.Delivery("ledger"); len(l.Attempts) != 1 || l.Attempts[0].Status != 200 || l.LeaseOwner != "" {
		t.Fatalf("ledger delivery %+v", l)
	}
	wantCounts(t, b, map[store.Status]int{store.StatusRetrying: 1})
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"crm": {store.StatusRetrying: 1}, "ledger": {store.StatusDelivered: 1}})
	claimNone(t, b, []string{"crm", "ledger"}, now.Add(30*time.Second), "crm before its retry, ledger delivered")

	// The retry dies: the record is dead, for an operator to look at.
	claimOne(t, b, "w-crm", "crm", "sale", now.Add(time.Minute))
	if err := b.RecordAttempt(ctx, "/pay", "sale", "crm", "w-crm", store.Attempt{Number: 2, At: now, Status: 500},
		store.Dead(store.DeadAttemptsExhausted)); err != nil {
		t.Fatal(err)
	}
	wantRecord(t, b, "/pay", "sale", store.StatusDead, map[string]store.Status{"crm": store.StatusDead, "ledger": store.StatusDelivered})
	wantCounts(t, b, map[store.Status]int{store.StatusDead: 1})

	// A replay to ledger (delivered already) is ledger's history alone.
	rr, err := b.RecordReplay(ctx, "/pay", "sale", "ledger", store.Attempt{Number: 2, At: now, Status: 200}, true)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status != store.StatusDead || rr.Delivery("ledger").Replays != 1 || rr.Delivery("crm").Replays != 0 ||
		len(rr.Delivery("crm").Attempts) != 2 || rr.Delivery("crm").DeadReason != store.DeadAttemptsExhausted {
		t.Fatalf("after a replay to ledger: %+v", rr)
	}
	// A replay to crm delivers crm: the record is delivered.
	rr, err = b.RecordReplay(ctx, "/pay", "sale", "crm", store.Attempt{Number: 3, At: now, Status: 200}, true)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Status != store.StatusDelivered || rr.Delivery("crm").Status != store.StatusDelivered || rr.Delivery("crm").Replays != 1 ||
		!rr.Delivery("crm").Attempts[2].Replay || len(rr.Delivery("ledger").Attempts) != 2 {
		t.Fatalf("after a replay to crm: %+v", rr)
	}
	wantCounts(t, b, map[store.Status]int{store.StatusDelivered: 1})
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"crm": {store.StatusDelivered: 1}, "ledger": {store.StatusDelivered: 1}})

	b = restart(t, b, reopen)
	got = wantRecord(t, b, "/pay", "sale", store.StatusDelivered, map[string]store.Status{"crm": store.StatusDelivered, "ledger": store.StatusDelivered})
	if len(got.Delivery("crm").Attempts) != 3 || len(got.Delivery("ledger").Attempts) != 2 || got.TraceParent != r.TraceParent {
		t.Fatalf("after a restart: %+v", got)
	}
	claimNone(t, b, []string{"crm", "ledger"}, now.Add(time.Hour), "every delivery delivered")
}

// testHeldDeliveries: a sync route's async destinations are held while its
// sync delivery is reserved or released, never claimed; MarkDelivered makes
// them pending at once, in its durable write; a provider's retry after a
// release carries each delivery's attempts over and leaves the held ones
// held.
func testHeldDeliveries(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	r := to("/pay", "sync", store.StatusReserved, "backend", "crm", "ledger")
	mustInsert(t, b, single(r, "{}"), false)
	held := map[string]store.Status{"backend": store.StatusReserved, "crm": store.StatusHeld, "ledger": store.StatusHeld}
	wantRecord(t, b, "/pay", "sync", store.StatusReserved, held)
	async := []string{"backend", "crm", "ledger"}
	claimNone(t, b, async, time.Now().Add(time.Hour), "while reserved")

	// The sync forward fails: released, the async deliveries still held.
	if err := b.Release(ctx, "/pay", "sync", r.ReservedUntil, &store.Attempt{Number: 1, At: time.Now(), Status: 502}); err != nil {
		t.Fatal(err)
	}
	held["backend"] = store.StatusReleased
	wantRecord(t, b, "/pay", "sync", store.StatusReleased, held)
	wantCounts(t, b, map[store.Status]int{store.StatusReleased: 1})
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"backend": {store.StatusReleased: 1}, "crm": {store.StatusHeld: 1}, "ledger": {store.StatusHeld: 1}})
	claimNone(t, b, async, time.Now().Add(time.Hour), "while released")

	// The provider's retry takes the released record's place, with the
	// sync delivery's attempt carried over; crm and ledger stay held.
	retry := to("/pay", "sync", store.StatusReserved, "backend", "crm", "ledger")
	if res := mustInsert(t, b, single(retry, "{}"), false); !res[0].Inserted {
		t.Fatalf("the retry was refused: %+v", res)
	}
	held["backend"] = store.StatusReserved
	got := wantRecord(t, b, "/pay", "sync", store.StatusReserved, held)
	if a := got.Delivery("backend").Attempts; len(a) != 1 || a[0].Status != 502 {
		t.Fatalf("the retry's sync delivery does not carry the failed attempt: %+v", a)
	}
	if len(got.Delivery("crm").Attempts) != 0 || len(got.Delivery("ledger").Attempts) != 0 {
		t.Fatalf("held deliveries got attempts: %+v", got.Deliveries)
	}
	claimNone(t, b, async, time.Now().Add(time.Hour), "while the retry is reserved")

	// Delivered: crm and ledger are pending, due at once.
	if err := b.MarkDelivered(ctx, "/pay", "sync", store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	want := map[string]store.Status{"backend": store.StatusDelivered, "crm": store.StatusPending, "ledger": store.StatusPending}
	got = wantRecord(t, b, "/pay", "sync", store.StatusPending, want)
	if a := got.Delivery("backend").Attempts; len(a) != 2 || a[0].Status != 502 || a[1].Status != 200 || a[1].Number != 2 {
		t.Fatalf("sync delivery's attempts %+v", a)
	}
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"backend": {store.StatusDelivered: 1}, "crm": {store.StatusPending: 1}, "ledger": {store.StatusPending: 1}})

	// Durably, before MarkDelivered returned: after a restart both are
	// still pending and claimable at once; the sync one never is.
	b = restart(t, b, reopen)
	wantRecord(t, b, "/pay", "sync", store.StatusPending, want)
	now := time.Now()
	claimOne(t, b, "w", "crm", "sync", now)
	claimOne(t, b, "w", "ledger", "sync", now)
	claimNone(t, b, []string{"backend"}, now.Add(time.Hour), "the delivered sync delivery")
	for _, d := range []string{"crm", "ledger"} {
		if err := b.RecordAttempt(ctx, "/pay", "sync", d, "w", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
			t.Fatal(err)
		}
	}
	wantRecord(t, b, "/pay", "sync", store.StatusDelivered,
		map[string]store.Status{"backend": store.StatusDelivered, "crm": store.StatusDelivered, "ledger": store.StatusDelivered})

	// Released and never retried, held deliveries stay held: they are
	// not claimed, the record expires as released.
	lone := to("/pay", "lone", store.StatusReserved, "backend", "crm")
	mustInsert(t, b, single(lone, "{}"), false)
	if err := b.Release(ctx, "/pay", "lone", lone.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	wantRecord(t, b, "/pay", "lone", store.StatusReleased, map[string]store.Status{"backend": store.StatusReleased, "crm": store.StatusHeld})
	claimNone(t, b, []string{"backend", "crm"}, time.Now().Add(time.Hour), "a released record's held delivery")

	// Insert refuses held deliveries without a reserved one.
	bad := to("/pay", "bad", store.StatusPending, "a", "b")
	bad.Deliveries[1].Status = store.StatusHeld
	if _, err := b.Insert(ctx, single(bad, "{}"), false); err == nil {
		t.Fatal("a pending delivery beside a held one was inserted")
	}
}

// testUnmatched: an event that matched no destination is stored without
// deliveries, as unmatched: listed, counted, never claimed, and gone after
// its retention like a delivered one.
func testUnmatched(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	r := rec("/pay", "nobody-wants-it", store.StatusPending)
	r.Deliveries = nil
	r.Retention = time.Second
	mustInsert(t, b, single(r, "{}"), true)
	mustInsert(t, b, single(rec("/pay", "wanted", store.StatusPending), "{}"), true)
	if r.Status != store.StatusUnmatched {
		t.Fatalf("Insert set status %s, want unmatched", r.Status)
	}
	wantRecord(t, b, "/pay", "nobody-wants-it", store.StatusUnmatched, map[string]store.Status{})
	listed, _, err := b.List(ctx, store.Filter{Status: store.StatusUnmatched})
	if err != nil || !slices.Equal(listIDs(listed), []string{"nobody-wants-it"}) {
		t.Fatalf("listing unmatched: %v %v", listIDs(listed), err)
	}
	wantCounts(t, b, map[store.Status]int{store.StatusUnmatched: 1, store.StatusPending: 1})
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"/pay": {store.StatusPending: 1}})
	if res := mustInsert(t, b, single(rec("/pay", "nobody-wants-it", store.StatusPending), "{}"), false); res[0].Inserted ||
		res[0].Existing != store.StatusUnmatched {
		t.Fatalf("an unmatched record's id is not held: %+v", res)
	}
	if _, err := b.RecordReplay(ctx, "/pay", "nobody-wants-it", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 200}, true); !errors.Is(err, store.ErrNoDelivery) {
		t.Fatalf("a replay to a delivery it does not have: %v", err)
	}
	// Badger enforces retention with its own TTL on the wall clock, which
	// no clock option reaches: this waits for the wall-clock second.
	testwait.For(t, "the unmatched record to expire after its 1s retention", func() bool {
		_, err := b.Get(ctx, "/pay", "nobody-wants-it")
		return errors.Is(err, store.ErrNotFound)
	})
	wantCounts(t, b, map[store.Status]int{store.StatusPending: 1})
}

// testSkip: Skip settles a dead delivery as skipped and nothing else.
func testSkip(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(to("/pay", "s", store.StatusPending, "crm", "ledger"), "{}"), false)
	if _, err := b.Skip(ctx, "/pay", "s", "crm"); !errors.Is(err, store.ErrNotDead) {
		t.Fatalf("skipping a pending delivery: %v", err)
	}
	attempt(t, b, "/pay", "s", "crm", "w", 410, store.Dead(store.DeadGone))
	got, err := b.Skip(ctx, "/pay", "s", "crm")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || got.Delivery("crm").Status != store.StatusSkipped || got.Delivery("ledger").Status != store.StatusPending {
		t.Fatalf("after a skip: %+v", got)
	}
	if _, err := b.Skip(ctx, "/pay", "s", "crm"); !errors.Is(err, store.ErrNotDead) {
		t.Fatalf("skipping twice: %v", err)
	}
	claimNone(t, b, []string{"crm"}, time.Now().Add(time.Hour), "a skipped delivery")
	attempt(t, b, "/pay", "s", "ledger", "w", 200, store.Delivered())
	// Skipped and delivered: the record is done with.
	wantRecord(t, b, "/pay", "s", store.StatusDelivered, map[string]store.Status{"crm": store.StatusSkipped, "ledger": store.StatusDelivered})
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"crm": {store.StatusSkipped: 1}, "ledger": {store.StatusDelivered: 1}})
	b = restart(t, b, reopen)
	wantRecord(t, b, "/pay", "s", store.StatusDelivered, map[string]store.Status{"crm": store.StatusSkipped, "ledger": store.StatusDelivered})

	if _, err := b.Skip(ctx, "/pay", "absent", "crm"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("skipping an absent record: %v", err)
	}
	if _, err := b.Skip(ctx, "/pay", "s", "elsewhere"); !errors.Is(err, store.ErrNoDelivery) {
		t.Fatalf("skipping an absent delivery: %v", err)
	}
	r := to("/pay", "sync", store.StatusReserved, "backend", "crm")
	mustInsert(t, b, single(r, "{}"), false)
	if _, err := b.Skip(ctx, "/pay", "sync", "crm"); !errors.Is(err, store.ErrNotDead) {
		t.Fatalf("skipping a held delivery: %v", err)
	}
}

// testNoDelivery: a transition naming a destination the record has no
// delivery to is refused with ErrNoDelivery and changes nothing.
func testNoDelivery(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(to("/pay", "n", store.StatusPending, "crm"), "{}"), false)
	claimOne(t, b, "w", "crm", "n", time.Now())
	a := store.Attempt{Number: 1, At: time.Now(), Status: 200}
	if err := b.RecordAttempt(ctx, "/pay", "n", "ledger", "w", a, store.Delivered()); !errors.Is(err, store.ErrNoDelivery) {
		t.Fatalf("record attempt: %v", err)
	}
	if _, err := b.RecordReplay(ctx, "/pay", "n", "ledger", a, true); !errors.Is(err, store.ErrNoDelivery) {
		t.Fatalf("record replay: %v", err)
	}
	if err := b.ReleaseLease(ctx, "/pay", "n", "ledger", "w"); err != nil {
		t.Fatalf("release lease of no delivery: %v", err)
	}
	if err := b.RecordAttempt(ctx, "/pay", "absent", "crm", "w", a, store.Delivered()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record attempt, absent record: %v", err)
	}
	got := wantRecord(t, b, "/pay", "n", store.StatusPending, map[string]store.Status{"crm": store.StatusPending})
	if len(got.Deliveries[0].Attempts) != 0 || got.Deliveries[0].Replays != 0 || got.Deliveries[0].LeaseOwner != "w" {
		t.Fatalf("a refused transition changed the record: %+v", got.Deliveries)
	}
	// Reservations too.
	r := to("/pay", "sync", store.StatusReserved, "backend", "crm")
	mustInsert(t, b, single(r, "{}"), false)
	if _, err := b.RecordReplay(ctx, "/pay", "sync", "ledger", a, true); !errors.Is(err, store.ErrNoDelivery) {
		t.Fatalf("record replay of a reservation: %v", err)
	}
}

// testFilterDestination: List and Purge by destination; with a status, the
// status is that delivery's, not the record's.
func testFilterDestination(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	for i, id := range []string{"both-1", "both-2", "both-3"} {
		r := to("/pay", id, store.StatusPending, "crm", "ledger")
		r.ReceivedAt = base.Add(time.Duration(i) * time.Second)
		mustInsert(t, b, single(r, "{}"), false)
	}
	onlyCRM := to("/pay", "crm-only", store.StatusPending, "crm")
	onlyCRM.ReceivedAt = base.Add(10 * time.Second)
	mustInsert(t, b, single(onlyCRM, "{}"), false)
	// both-2: crm dead, ledger delivered (the record dead); both-3: ledger
	// delivered (the record pending).
	attempt(t, b, "/pay", "both-2", "crm", "w", 410, store.Dead(store.DeadGone))
	attempt(t, b, "/pay", "both-2", "ledger", "w", 200, store.Delivered())
	attempt(t, b, "/pay", "both-3", "ledger", "w", 200, store.Delivered())

	cases := []struct {
		f    store.Filter
		want []string
	}{
		{store.Filter{Destination: "crm"}, []string{"crm-only", "both-3", "both-2", "both-1"}},
		{store.Filter{Destination: "ledger"}, []string{"both-3", "both-2", "both-1"}},
		{store.Filter{Destination: "nowhere"}, nil},
		{store.Filter{Destination: "ledger", Status: store.StatusDelivered}, []string{"both-3", "both-2"}},
		{store.Filter{Destination: "ledger", Status: store.StatusDead}, nil},
		{store.Filter{Destination: "crm", Status: store.StatusDead}, []string{"both-2"}},
		{store.Filter{Destination: "crm", Status: store.StatusPending}, []string{"crm-only", "both-3", "both-1"}},
		{store.Filter{Status: store.StatusPending}, []string{"crm-only", "both-3", "both-1"}},
		{store.Filter{Status: store.StatusDelivered}, nil},
		{store.Filter{Destination: "ledger", Status: store.StatusPending, Source: "/pay"}, []string{"both-1"}},
		{store.Filter{Destination: "crm", Source: "/pay", ID: "both-2"}, []string{"both-2"}},
		{store.Filter{Destination: "ledger", Source: "/pay", ID: "crm-only"}, nil},
	}
	for _, c := range cases {
		rs, _, err := b.List(ctx, c.f)
		if err != nil || !slices.Equal(listIDs(rs), c.want) {
			t.Errorf("list %+v: %v %v, want %v", c.f, listIDs(rs), err, c.want)
		}
	}
	// Paging by destination.
	f := store.Filter{Destination: "crm", Limit: 3}
	rs, cur, err := b.List(ctx, f)
	if err != nil || len(rs) != 3 || cur == "" {
		t.Fatalf("first page: %v %q %v", listIDs(rs), cur, err)
	}
	f.Cursor = cur
	if rs, cur, err := b.List(ctx, f); err != nil || !slices.Equal(listIDs(rs), []string{"both-1"}) || cur != "" {
		t.Fatalf("second page: %v %q %v", listIDs(rs), cur, err)
	}
	if _, _, err := b.List(ctx, store.Filter{Destination: "a\x00b"}); err == nil {
		t.Fatal("a destination with a NUL byte was accepted")
	}

	// Purge the records whose ledger delivery is delivered.
	if n, err := b.Purge(ctx, store.Filter{Destination: "ledger", Status: store.StatusDelivered}); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if rs, _, _ := b.List(ctx, store.Filter{}); !slices.Equal(listIDs(rs), []string{"crm-only", "both-1"}) {
		t.Fatalf("left after the purge: %v", listIDs(rs))
	}
	wantDeliveryCounts(t, b, map[string]map[store.Status]int{"crm": {store.StatusPending: 2}, "ledger": {store.StatusPending: 1}})
}
