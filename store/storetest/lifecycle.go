package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func testReservationExpiry(t *testing.T, open Open) {
	clock := NewClock()
	b := openStore(t, open, Options{ReservationExpiry: 300 * time.Millisecond, Now: clock.Now})
	ctx := context.Background()
	r := rec("/sub", "4806", store.StatusReserved)
	mustInsert(t, b, single(r, "{}"), false)
	if !r.ReservedUntil.Equal(clock.Now().Add(300 * time.Millisecond)) {
		t.Fatalf("ReservedUntil %v not now+lease", r.ReservedUntil)
	}
	got, _ := b.Get(ctx, "/sub", "4806")
	if !got.ReservedUntil.Equal(r.ReservedUntil) {
		t.Fatalf("stored lease %v, want %v", got.ReservedUntil, r.ReservedUntil)
	}
	res := mustInsert(t, b, single(rec("/sub", "4806", store.StatusReserved), "{}"), false)
	if res[0].Inserted || res[0].Existing != store.StatusReserved {
		t.Fatalf("live reservation did not block: %+v", res)
	}
	clock.Advance(350 * time.Millisecond)
	res = mustInsert(t, b, single(rec("/sub", "4806", store.StatusPending), `{"second":true}`), false)
	if !res[0].Inserted {
		t.Fatalf("expired reservation still blocks: %+v", res)
	}
	got, _ = b.Get(ctx, "/sub", "4806")
	if got.Status != store.StatusPending {
		t.Fatalf("status %s", got.Status)
	}
	if body, _ := b.RawBody(ctx, "/sub", "4806"); string(body) != `{"second":true}` {
		t.Fatalf("body %s", body)
	}
}

func testRelease(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	r1 := rec("/sub", "r1", store.StatusReserved)
	mustInsert(t, b, single(r1, "{}"), false)
	mustInsert(t, b, single(rec("/sub", "p1", store.StatusPending), "{}"), false)
	if r1.ReservedUntil.IsZero() {
		t.Fatal("Insert did not set the reservation's ReservedUntil")
	}
	failed := store.Attempt{Number: 1, At: time.Now(), Status: 502}
	if err := b.Release(ctx, "/sub", "r1", r1.ReservedUntil, &failed); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "/sub", "r1")
	if err != nil || got.Status != store.StatusReleased || !got.ReservedUntil.IsZero() ||
		len(dl(got).Attempts) != 1 || dl(got).Attempts[0].Status != 502 {
		t.Fatalf("released record: %+v %v", got, err)
	}
	if body, err := b.RawBody(ctx, "/sub", "r1"); err != nil || string(body) != "{}" {
		t.Fatalf("released record's body: %q %v", body, err)
	}
	if err := b.Release(ctx, "/sub", "p1", time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "/sub", "p1"); err != nil {
		t.Fatalf("Release deleted a pending record: %v", err)
	}
	if err := b.Release(ctx, "/sub", "absent", time.Time{}, nil); err != nil {
		t.Fatalf("releasing an absent key: %v", err)
	}
	if res := mustInsert(t, b, single(rec("/sub", "r1", store.StatusReserved), "{}"), false); !res[0].Inserted {
		t.Fatal("retry after release was not inserted")
	}
}

// A request whose reservation outlived its lease must not release the
// reservation of the retry that took the key over.
func testReleaseLeavesATakenOverReservation(t *testing.T, open Open) {
	clock := NewClock()
	b := openStore(t, open, Options{ReservationExpiry: 50 * time.Millisecond, Now: clock.Now})
	ctx := context.Background()
	first := rec("/pay", "slow", store.StatusReserved)
	mustInsert(t, b, single(first, "{}"), false)
	clock.Advance(100 * time.Millisecond)
	second := rec("/pay", "slow", store.StatusReserved)
	if res := mustInsert(t, b, single(second, "{}"), false); !res[0].Inserted {
		t.Fatalf("abandoned reservation was not taken over: %+v", res)
	}
	if err := b.Release(ctx, "/pay", "slow", first.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "/pay", "slow")
	if err != nil {
		t.Fatalf("the late release deleted the newer reservation: %v", err)
	}
	if got.Status != store.StatusReserved || !got.ReservedUntil.Equal(second.ReservedUntil) {
		t.Fatalf("record %+v", got)
	}
	if err := b.Release(ctx, "/pay", "slow", second.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "/pay", "slow"); err != nil || got.Status != store.StatusReleased || len(dl(got).Attempts) != 0 {
		t.Fatalf("the owner's release did not end its reservation: %+v %v", got, err)
	}
}

func testMarkDeliveredExpires(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	r := rec("/pay", "ttl", store.StatusReserved)
	r.Retention = time.Second
	mustInsert(t, b, single(r, "{}"), false)
	// Reservations are never cached; a delivered record is, with its expiry.
	if err := b.MarkDelivered(ctx, "/pay", "ttl", store.Attempt{Number: 1, At: time.Now(), Status: 200, Latency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if up, err := b.Get(ctx, "/pay", "ttl"); err != nil || up.Status != store.StatusDelivered || len(dl(up).Attempts) != 1 || !up.ReservedUntil.IsZero() {
		t.Fatalf("after MarkDelivered: %+v %v", up, err)
	}
	if res := mustInsert(t, b, single(rec("/pay", "ttl", store.StatusReserved), "{}"), false); res[0].Inserted || res[0].Existing != store.StatusDelivered {
		t.Fatalf("delivered record not a duplicate: %+v", res)
	}
	// Badger enforces retention with its own TTL on the wall clock, which no
	// clock option reaches: this waits for the wall-clock second to pass.
	testwait.For(t, "the delivered record to expire after its 1s retention", func() bool {
		_, err := b.Get(ctx, "/pay", "ttl")
		return errors.Is(err, store.ErrNotFound)
	})
	// The cached "present" entry must have expired with the record.
	if res := mustInsert(t, b, single(rec("/pay", "ttl", store.StatusPending), "{}"), false); !res[0].Inserted {
		t.Fatalf("expired record still a duplicate: %+v", res)
	}
}

func testTransitionErrors(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	a := store.Attempt{Number: 1, At: time.Now(), Status: 200}
	if err := b.MarkDelivered(ctx, "/pay", "nope", a); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mark delivered, missing: %v", err)
	}
	if err := b.RecordAttempt(ctx, "/pay", "nope", "/pay", "o", a, store.Delivered()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record attempt, missing: %v", err)
	}
	if _, err := b.RecordReplay(ctx, "/pay", "nope", "/pay", a, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record replay, missing: %v", err)
	}
	mustInsert(t, b, single(rec("/pay", "u", store.StatusPending), "{}"), false)
	for _, d := range []store.Decision{{Status: store.StatusDead}, {Status: store.StatusPending}, {}} {
		if err := b.RecordAttempt(ctx, "/pay", "u", "/pay", "o", a, d); err == nil {
			t.Fatalf("decision %+v accepted", d)
		}
	}
	if got, _ := b.Get(ctx, "/pay", "u"); got.Status != store.StatusPending || len(dl(got).Attempts) != 0 {
		t.Fatalf("a refused decision was written: %+v", got)
	}
}

// Concurrent read-modify-writes of one record must not lose updates.
func testReplaysConcurrent(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "c", store.StatusPending), "{}"), false)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.RecordReplay(ctx, "/pay", "c", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 500}, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := b.Get(ctx, "/pay", "c"); dl(got).Replays != 20 {
		t.Fatalf("replays %d, want 20", dl(got).Replays)
	}
}

func testClaimExclusiveTwoOwners(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	const n = 300
	in := &store.Ingest{RawBody: []byte("[]")}
	for i := range n {
		in.Records = append(in.Records, rec("/pay", fmt.Sprint("c", i), store.StatusPending))
	}
	// Records of another source and not-yet-due ones must not be claimed.
	other := rec("/other", "o1", store.StatusPending)
	// o1 is the oldest due record, in every engine's order: received before
	// the others and never leased.
	for _, r := range in.Records {
		r.ReceivedAt = time.Now()
	}
	other.ReceivedAt = time.Now().Add(-time.Hour)
	in.Records = append(in.Records, other)
	// A retry due in an hour, scheduled before the others are stored.
	mustInsert(t, b, single(rec("/pay", "later", store.StatusPending), "{}"), false)
	if c, err := b.Claim(ctx, "setup", []string{"/pay"}, time.Now(), time.Minute, 1); err != nil || len(c) != 1 {
		t.Fatalf("claiming the later record: %v %v", c, err)
	}
	if err := b.RecordAttempt(ctx, "/pay", "later", "/pay", "setup", store.Attempt{Number: 1, At: time.Now(), Status: 503},
		store.RetryAt(time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, b, in, false)

	var mu sync.Mutex
	owners := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("config-", w%2)
			for {
				got, err := b.Claim(ctx, owner, []string{"/pay"}, time.Now(), time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					r, d := c.Record, leased(c)
					if d.LeaseOwner != owner || !d.LeaseUntil.After(time.Now()) {
						t.Errorf("%s: lease %q until %v", r.ID, d.LeaseOwner, d.LeaseUntil)
					}
					if prev, dup := owners[r.ID]; dup {
						t.Errorf("%s claimed by %s and %s", r.ID, prev, owner)
					}
					owners[r.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owners) != n {
		t.Fatalf("claimed %d records, want %d", len(owners), n)
	}
	if _, ok := owners["later"]; ok {
		t.Fatal("claimed a record not yet due")
	}
	got, _ := b.Get(ctx, "/pay", "c17")
	if dl(got).LeaseOwner != owners["c17"] {
		t.Fatalf("stored lease owner %q, claimed by %q", dl(got).LeaseOwner, owners["c17"])
	}
	// Once due, the later record is claimable.
	res, err := b.Claim(ctx, "x", []string{"/pay", "/other"}, time.Now().Add(2*time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range res {
		ids[c.Record.ID] = true
	}
	// Leases of the first round (1 min) have expired 2 hours from now too,
	// so "later", "o1" and 8 of the expired leases come back, oldest due first.
	if !ids["o1"] || len(res) != 10 {
		t.Fatalf("claim across sources: %v", ids)
	}
}

func testClaimLeaseExpiryAndRelease(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "l1", store.StatusPending), "{}"), true)
	now := time.Now()
	got, err := b.Claim(ctx, "a", []string{"/pay"}, now, 30*time.Second, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("first claim: %v %v", got, err)
	}
	if again, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(10*time.Second), 30*time.Second, 10); len(again) != 0 {
		t.Fatalf("claimed while leased: %v", again)
	}
	// Owner a died (kill -9): after the lease, b may take it.
	again, err := b.Claim(ctx, "b", []string{"/pay"}, now.Add(31*time.Second), 30*time.Second, 10)
	if err != nil || len(again) != 1 || leased(again[0]).LeaseOwner != "b" {
		t.Fatalf("reclaim after lease expiry: %v %v", again, err)
	}
	// A failed attempt: retry in 5s, lease given back.
	if err := b.RecordAttempt(ctx, "/pay", "l1", "/pay", "b", store.Attempt{Number: 1, At: now, Status: 503}, store.RetryAt(now.Add(5*time.Second))); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(4*time.Second), time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed before NextAttemptAt")
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 1 {
		t.Fatal("not claimable at NextAttemptAt")
	}
	// A lease given back makes the record claimable at once; one held by
	// another owner is not given back.
	if err := b.ReleaseLease(ctx, "/pay", "l1", "/pay", "b"); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 0 {
		t.Fatal("a lease was given back by an owner that did not hold it")
	}
	if err := b.ReleaseLease(ctx, "/pay", "l1", "/pay", "a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 1 {
		t.Fatal("not claimable after its lease was given back")
	}
	// store.Delivered and dead records leave the due index.
	if err := b.RecordAttempt(ctx, "/pay", "l1", "/pay", "b", store.Attempt{Number: 2, At: now, Status: 410}, store.Dead(store.DeadGone)); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, "/pay", "l1"); got.Status != store.StatusDead || dl(got).DeadReason != store.DeadGone || !dl(got).NextAttemptAt.IsZero() || dl(got).LeaseOwner != "" {
		t.Fatalf("dead record %+v", got)
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(time.Hour), time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed a dead record")
	}
	if _, err := b.Claim(ctx, "", []string{"/pay"}, now, time.Minute, 1); err == nil {
		t.Fatal("empty owner accepted")
	}
}

func testLateAttemptKeepsTakenOverLease(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "slow", store.StatusPending), "{}"), true)
	now := time.Now()
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Second, 1); len(c) != 1 {
		t.Fatal("claim by a")
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(2*time.Second), time.Hour, 1); len(c) != 1 {
		t.Fatal("claim by b after a's lease ran out")
	}
	// a comes back late and records its attempt: the attempt is history,
	// the state and the lease stay b's.
	err := b.RecordAttempt(ctx, "/pay", "slow", "/pay", "a", store.Attempt{Number: 1, At: now, Status: 500}, store.Dead(store.DeadAttemptsExhausted))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("late attempt: %v", err)
	}
	if c, _ := b.Claim(ctx, "c", []string{"/pay"}, now.Add(3*time.Second), time.Hour, 1); len(c) != 0 {
		t.Fatal("claimed while b holds the lease")
	}
	got, err := b.Get(ctx, "/pay", "slow")
	if err != nil || dl(got).LeaseOwner != "b" || len(dl(got).Attempts) != 1 || got.Status != store.StatusPending {
		t.Fatalf("after the late attempt: %+v %v", got, err)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay"}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	// The lease went with the record: the same event stored again is
	// claimable at once.
	mustInsert(t, b, single(rec("/pay", "slow", store.StatusPending), "{}"), true)
	if c, _ := b.Claim(ctx, "c", []string{"/pay"}, now.Add(3*time.Second), time.Hour, 1); len(c) != 1 {
		t.Fatal("purge left the lease behind")
	}
}

// A record its lease owner has settled (delivered or dead) shows no lease to
// any reader: the lease ends with the state change, for Get and List alike,
// however the engine keeps its leases. Workers claim and settle records
// while readers look at them without pause.
func testSettledRecordShowsNoLease(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	const n = 120
	in := &store.Ingest{RawBody: []byte("[]")}
	for i := range n {
		in.Records = append(in.Records, rec("/pay", fmt.Sprint("s", i), store.StatusPending))
	}
	mustInsert(t, b, in, true)

	check := func(r *store.Record, via string) {
		t.Helper()
		for _, d := range r.Deliveries {
			if (d.Status == store.StatusDelivered || d.Status == store.StatusDead) && (d.LeaseOwner != "" || !d.LeaseUntil.IsZero()) {
				t.Errorf("%s: %s delivery of %s carries the lease of %q until %v", via, d.Status, r.ID, d.LeaseOwner, d.LeaseUntil)
			}
		}
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for w := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if w == 0 {
					r, err := b.Get(ctx, "/pay", fmt.Sprint("s", i%n))
					if err != nil {
						t.Error(err)
						return
					}
					check(r, "get")
					continue
				}
				recs, _, err := b.List(ctx, store.Filter{Source: "/pay", Limit: n})
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range recs {
					check(r, "list")
				}
			}
		}()
	}

	// Every record is attempted twice: first a retry due at once, then
	// delivered or dead.
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			owner := fmt.Sprint("worker-", w)
			for {
				got, err := b.Claim(ctx, owner, []string{"/pay"}, time.Now(), time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				for _, c := range got {
					r := c.Record
					a := store.Attempt{Number: len(leased(c).Attempts) + 1, At: time.Now(), Status: 200}
					d := store.Delivered()
					switch {
					case len(leased(c).Attempts) == 0:
						a.Status, d = 503, store.RetryAt(time.Now())
					case r.ID[len(r.ID)-1]%2 == 1:
						a.Status, d = 410, store.Dead(store.DeadGone)
					}
					if err := b.RecordAttempt(ctx, "/pay", r.ID, "/pay", owner, a, d); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	workers.Wait()
	close(done)
	readers.Wait()
	c, err := b.Counts(ctx)
	if err != nil || c[store.StatusDelivered]+c[store.StatusDead] != n {
		t.Fatalf("counts after the workers: %v %v", c, err)
	}
}
