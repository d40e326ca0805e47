package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func testDedupKeyWithinWindow(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	for _, durable := range []bool{false, true} {
		key := fmt.Sprint("customer.updated:", durable)
		first := mustInsert(t, b, single(keyed("a1"+key, key, time.Hour, store.StatusPending), `{}`), durable)
		if !first[0].Inserted {
			t.Fatalf("first: %+v", first)
		}
		res := mustInsert(t, b, single(keyed("a2"+key, key, time.Hour, store.StatusPending), `{}`), durable)
		if res[0].Inserted || res[0].Existing != store.StatusPending || res[0].ExistingID != "a1"+key {
			t.Fatalf("second within the window: %+v", res)
		}
		if _, err := b.Get(context.Background(), "/loyalty", "a2"+key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the duplicate was stored: %v", err)
		}
	}
	// Another source with the same key is another sender.
	r := keyed("b1", "customer.updated:false", time.Hour, store.StatusPending)
	r.Source = "/other"
	if res := mustInsert(t, b, single(r, `{}`), false); !res[0].Inserted {
		t.Fatalf("the key of another source blocked: %+v", res)
	}
}

func testDedupKeyAfterWindow(t *testing.T, open Open) {
	clock := NewClock()
	b := openStore(t, open, Options{Now: clock.Now})
	ctx := context.Background()
	const window = 50 * time.Millisecond
	mustInsert(t, b, single(keyed("w1", "k", window, store.StatusPending), `{}`), false)
	clock.Advance(2 * window)
	res := mustInsert(t, b, single(keyed("w2", "k", window, store.StatusPending), `{}`), false)
	if !res[0].Inserted {
		t.Fatalf("after the window: %+v", res)
	}
	for _, id := range []string{"w1", "w2"} {
		if _, err := b.Get(ctx, "/loyalty", id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// The key now belongs to w2, and to w2 only.
	res = mustInsert(t, b, single(keyed("w3", "k", window, store.StatusPending), `{}`), false)
	if res[0].Inserted || res[0].ExistingID != "w2" {
		t.Fatalf("within w2's window: %+v", res)
	}
}

// (Source, ID) stays unique for records with a dedup key.
func testDedupKeyIDStillUnique(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	mustInsert(t, b, single(keyed("same", "k1", time.Hour, store.StatusPending), `{}`), false)
	for _, r := range []*store.Record{keyed("same", "k2", time.Hour, store.StatusPending), rec("/loyalty", "same", store.StatusPending)} {
		res := mustInsert(t, b, single(r, `{}`), false)
		if res[0].Inserted || res[0].ExistingID != "same" {
			t.Fatalf("id duplicate with key %q: %+v", r.DedupKey, res)
		}
	}
	// The id duplicate did not take key k2.
	if res := mustInsert(t, b, single(keyed("other", "k2", time.Hour, store.StatusPending), `{}`), false); !res[0].Inserted {
		t.Fatalf("k2 held by a duplicate: %+v", res)
	}
}

func testDedupKeyConcurrent(t *testing.T, open Open) {
	{
		b := openStore(t, open, Options{})
		const n = 50
		var wg sync.WaitGroup
		results := make([]store.InsertResult, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := b.Insert(context.Background(), single(keyed(fmt.Sprint("c", i), "hot", time.Hour, store.StatusPending), `{}`), i%2 == 0)
				errs[i] = err
				if err == nil {
					results[i] = res[0]
				}
			}()
		}
		wg.Wait()
		winner := ""
		for i, res := range results {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if res.Inserted {
				if winner != "" {
					t.Fatalf("both %s and c%d inserted", winner, i)
				}
				winner = fmt.Sprint("c", i)
			}
		}
		if winner == "" {
			t.Fatal("none inserted")
		}
		for i, res := range results {
			if !res.Inserted && res.ExistingID != winner {
				t.Fatalf("c%d: ExistingID %q, want %q", i, res.ExistingID, winner)
			}
		}
		c, err := b.Counts(context.Background())
		if err != nil || c[store.StatusPending] != 1 {
			t.Fatalf("counts %v %v", c, err)
		}
	}
}

func testDedupKeyWithinOneIngest(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	in := &store.Ingest{RawBody: []byte(`[{},{},{}]`), Records: []*store.Record{
		keyed("i1", "k", time.Hour, store.StatusPending),
		keyed("i2", "k", time.Hour, store.StatusPending),
		keyed("i3", "other", time.Hour, store.StatusPending),
	}}
	res := mustInsert(t, b, in, true)
	if !res[0].Inserted || res[1].Inserted || res[1].ExistingID != "i1" || !res[2].Inserted {
		t.Fatalf("results %+v", res)
	}
	// Behind a stored holder, both copies in a batch name it.
	in = &store.Ingest{RawBody: []byte(`[{},{}]`), Records: []*store.Record{
		keyed("j1", "k", time.Hour, store.StatusPending),
		keyed("j2", "k", time.Hour, store.StatusPending),
	}}
	res = mustInsert(t, b, in, false)
	for i, r := range res {
		if r.Inserted || r.ExistingID != "i1" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

func testDedupKeySurvivesRestart(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	mustInsert(t, b, single(keyed("r1", "k", time.Hour, store.StatusPending), `{}`), true)
	b = restart(t, b, reopen)
	res := mustInsert(t, b, single(keyed("r2", "k", time.Hour, store.StatusPending), `{}`), true)
	if res[0].Inserted || res[0].ExistingID != "r1" {
		t.Fatalf("after reopening: %+v", res)
	}
}

func testDedupKeyReleaseFreesIt(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	r := keyed("s1", "k", time.Hour, store.StatusReserved)
	mustInsert(t, b, single(r, `{}`), true)
	res := mustInsert(t, b, single(keyed("s2", "k", time.Hour, store.StatusReserved), `{}`), true)
	if res[0].Inserted || res[0].Existing != store.StatusReserved || res[0].ExistingID != "s1" {
		t.Fatalf("live reservation: %+v", res)
	}
	if err := b.Release(ctx, "/loyalty", "s1", r.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	if res := mustInsert(t, b, single(keyed("s3", "k", time.Hour, store.StatusReserved), `{}`), true); !res[0].Inserted {
		t.Fatalf("after release: %+v", res)
	}
}

// A reservation holds its key until it expires, even past the window;
// once it has expired the key is free, and the abandoned reservation,
// which no retry could ever take over (its id is unique), is deleted.
func testDedupKeyReservationExpiry(t *testing.T, open Open) {
	ctx := context.Background()
	const window = 10 * time.Millisecond
	clock := NewClock()
	long := openStore(t, open, Options{ReservationExpiry: time.Hour, Now: clock.Now})
	mustInsert(t, long, single(keyed("h1", "k", window, store.StatusReserved), `{}`), false)
	clock.Advance(2 * window)
	if res := mustInsert(t, long, single(keyed("h2", "k", window, store.StatusPending), `{}`), false); res[0].Inserted || res[0].ExistingID != "h1" {
		t.Fatalf("past the window, within the lease: %+v", res)
	}

	const lease = 50 * time.Millisecond
	b := openStore(t, open, Options{ReservationExpiry: lease, Now: clock.Now})
	r := keyed("l1", "k", time.Hour, store.StatusReserved)
	mustInsert(t, b, single(r, `{}`), false)
	clock.Advance(2 * lease)
	if res := mustInsert(t, b, single(keyed("l2", "k", time.Hour, store.StatusPending), `{}`), false); !res[0].Inserted {
		t.Fatalf("after the lease, within the window: %+v", res)
	}
	if _, err := b.Get(ctx, "/loyalty", "l1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the abandoned reservation is still stored: %v", err)
	}
	// A late release by the dead reservation's owner leaves l2's key.
	if err := b.Release(ctx, "/loyalty", "l1", r.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	if res := mustInsert(t, b, single(keyed("l3", "k", time.Hour, store.StatusPending), `{}`), false); res[0].Inserted || res[0].ExistingID != "l2" {
		t.Fatalf("l2's key: %+v", res)
	}
}

func testDedupKeyPurgeRemovesIt(t *testing.T, open Open) {
	clock := NewClock()
	b := openStore(t, open, Options{Now: clock.Now})
	ctx := context.Background()
	mustInsert(t, b, single(keyed("p1", "k", time.Hour, store.StatusDead), `{}`), false)
	if res := mustInsert(t, b, single(keyed("p2", "k", time.Hour, store.StatusPending), `{}`), false); res[0].Inserted {
		t.Fatalf("before purge: %+v", res)
	}
	if n, err := b.Purge(ctx, store.Filter{Status: store.StatusDead}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if res := mustInsert(t, b, single(keyed("p3", "k", time.Hour, store.StatusPending), `{}`), false); !res[0].Inserted {
		t.Fatalf("after purge: %+v", res)
	}
	// Purging a record whose key a later record holds leaves that key.
	const window = 20 * time.Millisecond
	mustInsert(t, b, single(keyed("q1", "q", window, store.StatusDead), `{}`), false)
	clock.Advance(2 * window)
	mustInsert(t, b, single(keyed("q2", "q", time.Hour, store.StatusPending), `{}`), false)
	if n, err := b.Purge(ctx, store.Filter{Status: store.StatusDead}); err != nil || n != 1 {
		t.Fatalf("purge q1: %d %v", n, err)
	}
	if res := mustInsert(t, b, single(keyed("q3", "q", time.Hour, store.StatusPending), `{}`), false); res[0].Inserted || res[0].ExistingID != "q2" {
		t.Fatalf("q2's key after purging q1: %+v", res)
	}
}

func testDedupKeyErrors(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	if _, err := b.Insert(ctx, single(keyed("e1", "k", 0, store.StatusPending), `{}`), false); err == nil {
		t.Fatal("a dedup key without a window was accepted")
	}
}
