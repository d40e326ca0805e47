package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// release reserves r, then releases it with a failed attempt answered
// status, as a sync delivery the backend refused.
func release(t *testing.T, b store.Store, r *store.Record, status int) {
	t.Helper()
	mustInsert(t, b, single(r, "{}"), false)
	a := store.Attempt{Number: 1, At: time.Now(), Status: status, Latency: time.Millisecond}
	if err := b.Release(context.Background(), r.Source, r.ID, r.ReservedUntil, &a); err != nil {
		t.Fatal(err)
	}
}

// The provider's retry of a refused sync delivery takes the released
// record's place and shows the failed attempt, then its own.
func testReleasedAttemptsCarriedOver(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	release(t, b, rec("/pay", "sync", store.StatusReserved), 502)
	c, err := b.Counts(ctx)
	if err != nil || c[store.StatusReleased] != 1 || c[store.StatusReserved] != 0 {
		t.Fatalf("counts after release: %v %v", c, err)
	}
	listed, _, err := b.List(ctx, store.Filter{Status: store.StatusReleased})
	if err != nil || len(listed) != 1 || listed[0].ID != "sync" {
		t.Fatalf("listing released: %+v %v", listed, err)
	}

	retry := rec("/pay", "sync", store.StatusReserved)
	if res := mustInsert(t, b, single(retry, "{}"), false); !res[0].Inserted {
		t.Fatalf("the retry did not take the released record's place: %+v", res)
	}
	if err := b.MarkDelivered(ctx, "/pay", "sync", store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "/pay", "sync")
	if err != nil || got.Status != store.StatusDelivered || len(dl(got).Attempts) != 2 ||
		dl(got).Attempts[0].Status != 502 || dl(got).Attempts[1].Status != 200 ||
		dl(got).Attempts[0].Number != 1 || dl(got).Attempts[1].Number != 2 || dl(got).Attempts[1].Latency != 0 {
		t.Fatalf("delivered retry: %+v %v", got, err)
	}
	if c, err := b.Counts(ctx); err != nil || c[store.StatusReleased] != 0 || c[store.StatusDelivered] != 1 {
		t.Fatalf("counts after the retry: %v %v", c, err)
	}

	// An async insert of a released id (a route turned async) carries
	// the attempts over too.
	release(t, b, rec("/pay", "async", store.StatusReserved), 503)
	if res := mustInsert(t, b, single(rec("/pay", "async", store.StatusPending), "{}"), false); !res[0].Inserted {
		t.Fatalf("pending insert over a released record: %+v", res)
	}
	if got, err := b.Get(ctx, "/pay", "async"); err != nil || got.Status != store.StatusPending ||
		len(dl(got).Attempts) != 1 || dl(got).Attempts[0].Status != 503 {
		t.Fatalf("pending after release: %+v %v", got, err)
	}

	// A retry that fails too is released in turn (its ReservedUntil is
	// set on the caller's record as on any reservation) and keeps both.
	release(t, b, rec("/pay", "twice", store.StatusReserved), 502)
	release(t, b, rec("/pay", "twice", store.StatusReserved), 503)
	if got, err := b.Get(ctx, "/pay", "twice"); err != nil || got.Status != store.StatusReleased ||
		len(dl(got).Attempts) != 2 || dl(got).Attempts[0].Status != 502 || dl(got).Attempts[1].Status != 503 ||
		dl(got).Attempts[1].Number != 2 || dl(got).Attempts[1].Latency != time.Millisecond {
		t.Fatalf("released twice: %+v %v", got, err)
	}
}

// A released record blocks neither its id nor its dedup key; one that
// only a dedup key named (an id of its own) stays, visible, until its
// retention passes or it is purged.
func testReleasedHoldsNoKey(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	r := keyed("k1", "content", time.Hour, store.StatusReserved)
	r.Retention = time.Second
	release(t, b, r, 500)
	res := mustInsert(t, b, single(keyed("k2", "content", time.Hour, store.StatusPending), "{}"), false)
	if !res[0].Inserted {
		t.Fatalf("the released record still holds its dedup key: %+v", res)
	}
	if res := mustInsert(t, b, single(keyed("k3", "content", time.Hour, store.StatusPending), "{}"), false); res[0].Inserted || res[0].ExistingID != "k2" {
		t.Fatalf("the new record does not hold the key: %+v", res)
	}
	if got, err := b.Get(ctx, "/loyalty", "k1"); err != nil || got.Status != store.StatusReleased || len(dl(got).Attempts) != 1 {
		t.Fatalf("the released record is gone: %+v %v", got, err)
	}
	// Retention is enforced on the wall clock by Badger's TTL (see
	// testMarkDeliveredExpires).
	testwait.For(t, "the released record to expire after its 1s retention", func() bool {
		_, err := b.Get(ctx, "/loyalty", "k1")
		return errors.Is(err, store.ErrNotFound)
	})
	if got, err := b.Get(ctx, "/loyalty", "k2"); err != nil || got.Status != store.StatusPending {
		t.Fatalf("the expiry took the key's new holder: %+v %v", got, err)
	}

	release(t, b, rec("/pay", "gone", store.StatusReserved), 502)
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay", Status: store.StatusReleased}); err != nil || n != 1 {
		t.Fatalf("purging released records: %d %v", n, err)
	}
	if _, err := b.Get(ctx, "/pay", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged released record: %v", err)
	}
}

// Concurrent inserts of a released record's id store it exactly once, with
// the failed attempt once.
func testReleasedConcurrentInserts(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	release(t, b, rec("/usaepay", "same", store.StatusReserved), 502)
	const n = 50
	var inserted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for k := range n {
		st := store.StatusPending
		if k%2 == 0 {
			st = store.StatusReserved
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := b.Insert(context.Background(), single(rec("/usaepay", "same", st), "{}"), true)
			if err != nil {
				errs <- err
				return
			}
			if res[0].Inserted {
				inserted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := inserted.Load(); got != 1 {
		t.Fatalf("%d of %d concurrent inserts over a released record stored it", got, n)
	}
	got, err := b.Get(context.Background(), "/usaepay", "same")
	if err != nil || got.Status == store.StatusReleased || len(dl(got).Attempts) != 1 || dl(got).Attempts[0].Status != 502 {
		t.Fatalf("record after concurrent inserts: %+v %v", got, err)
	}
}
