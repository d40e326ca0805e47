package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// keysIn lists every live key of the store's Badger database but its
// format marker, written at open.
func keysIn(t *testing.T, b *Store) []string {
	t.Helper()
	var keys []string
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); k != string(formatKey) {
				keys = append(keys, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A sync delivery writes nothing while it is in flight, and its delivered
// record, payload included, in one go.
func TestReservationWritesOnceDelivered(t *testing.T) {
	b, dir := openTest(t, Options{})
	ctx := context.Background()
	r := rec("/pay", "s1", store.StatusReserved)
	r.Retention = time.Hour
	mustInsert(t, b, single(r, `{"raw":1}`), false)
	if keys := keysIn(t, b); len(keys) != 0 {
		t.Fatalf("a reservation wrote %q", keys)
	}
	got, err := b.Get(ctx, "/pay", "s1")
	if err != nil || got.Status != store.StatusReserved || !bytes.Equal(got.Event, r.Event) {
		t.Fatalf("get of the reservation: %+v %v", got, err)
	}
	if raw, err := b.RawBody(ctx, "/pay", "s1"); err != nil || string(raw) != `{"raw":1}` {
		t.Fatalf("raw body of the reservation: %q %v", raw, err)
	}
	if c, _ := b.Counts(ctx); c[store.StatusReserved] != 1 {
		t.Fatalf("counts %v", c)
	}
	if l, _, _ := b.List(ctx, store.Filter{Status: store.StatusReserved}); len(l) != 1 || l[0].ID != "s1" {
		t.Fatalf("list of reservations: %v", listIDs(l))
	}
	syncs := b.Stats().Syncs
	if err := b.MarkDelivered(ctx, "/pay", "s1", store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().Syncs - syncs; n != 1 {
		t.Fatalf("%d syncs for one delivered record", n)
	}
	if n := b.resv.count(); n != 0 {
		t.Fatalf("%d reservations left in memory", n)
	}
	// It is all on disk: a restart finds the record, its event and body,
	// and answers a redelivery as a duplicate.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err = b.Get(ctx, "/pay", "s1")
	if err != nil || got.Status != store.StatusDelivered || len(got.Deliveries[0].Attempts) != 1 || !bytes.Equal(got.Event, r.Event) || !got.ReservedUntil.IsZero() {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	if raw, err := b.RawBody(ctx, "/pay", "s1"); err != nil || string(raw) != `{"raw":1}` {
		t.Fatalf("raw body after restart: %q %v", raw, err)
	}
	if res := mustInsert(t, b, single(rec("/pay", "s1", store.StatusReserved), "{}"), false); res[0].Inserted || res[0].Existing != store.StatusDelivered {
		t.Fatalf("redelivery after restart: %+v", res)
	}
}

// A process that ends mid-forward leaves nothing behind: the provider's
// retry gets through at once.
func TestReservationDiesWithTheProcess(t *testing.T) {
	b, dir := openTest(t, Options{})
	ctx := context.Background()
	r := rec("/pay", "k1", store.StatusReserved)
	r.DedupKey, r.DedupWindow = "content", time.Hour
	mustInsert(t, b, single(r, "{}"), false)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Get(ctx, "/pay", "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the reservation outlived its process: %v", err)
	}
	again := rec("/pay", "k2", store.StatusReserved)
	again.DedupKey, again.DedupWindow = "content", time.Hour
	if res := mustInsert(t, b, single(again, "{}"), false); !res[0].Inserted {
		t.Fatalf("the retry was blocked: %+v", res)
	}
}

// Concurrent copies of one event, sync and async alike: exactly one gets
// the key, and a copy that meets a reservation is told it is in progress.
func TestReservationConcurrentCopies(t *testing.T) {
	for _, mixed := range []bool{false, true} {
		t.Run(fmt.Sprint("mixed=", mixed), func(t *testing.T) {
			b, _ := openTest(t, Options{})
			const n = 50
			results := make([]store.InsertResult, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					st := store.StatusReserved
					if mixed && i%2 == 1 {
						st = store.StatusPending
					}
					r := rec("/pay", "same", st)
					r.DedupKey, r.DedupWindow = "k", time.Hour
					if i%3 == 0 {
						r.ID = fmt.Sprint("other-id-", i) // the same content under another id
					}
					res, err := b.Insert(context.Background(), single(r, "{}"), false)
					if err != nil {
						t.Error(err)
						return
					}
					results[i] = res[0]
				}()
			}
			close(start)
			wg.Wait()
			winners := 0
			var status store.Status
			for _, res := range results {
				if res.Inserted {
					winners++
				}
			}
			for i, res := range results {
				if res.Inserted {
					status = store.StatusReserved
					if mixed && i%2 == 1 {
						status = store.StatusPending
					}
				}
			}
			if winners != 1 {
				t.Fatalf("%d of %d copies got the key", winners, n)
			}
			for i, res := range results {
				if !res.Inserted && res.Existing != status {
					t.Fatalf("copy %d: %+v, want a duplicate of a %s record", i, res, status)
				}
			}
		})
	}
}

// The items of a sync batch share one body entry, written with the first
// delivered item; a released item is gone.
func TestReservedBatchSharesBody(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	body := []byte(`[{"a":1},{"a":2},{"a":3}]`)
	in := &store.Ingest{RawBody: body}
	for i := range 3 {
		in.Records = append(in.Records, rec("/loyalty", fmt.Sprint("i", i), store.StatusReserved))
	}
	mustInsert(t, b, in, false)
	for _, id := range []string{"i0", "i1"} {
		if err := b.MarkDelivered(ctx, "/loyalty", id, store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Release(ctx, "/loyalty", "i2", in.Records[2].ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	bodies := 0
	for _, k := range keysIn(t, b) {
		if len(k) > len(prefixBody) && k[:len(prefixBody)] == prefixBody {
			bodies++
		}
	}
	if bodies != 1 {
		t.Fatalf("%d body entries for one batch", bodies)
	}
	for _, id := range []string{"i0", "i1"} {
		if raw, err := b.RawBody(ctx, "/loyalty", id); err != nil || !bytes.Equal(raw, body) {
			t.Fatalf("%s: %q %v", id, raw, err)
		}
	}
	if got, err := b.Get(ctx, "/loyalty", "i2"); err != nil || got.Status != store.StatusReleased {
		t.Fatalf("released item: %+v %v", got, err)
	}
	if raw, err := b.RawBody(ctx, "/loyalty", "i2"); err != nil || !bytes.Equal(raw, body) {
		t.Fatalf("released item's body: %q %v", raw, err)
	}
	if n, err := b.SweepBodies(ctx); err != nil || n != 0 {
		t.Fatalf("sweep removed a live body: %d %v", n, err)
	}
}

// A delivered reservation's dedup key holds for its window from the
// reservation, on disk.
func TestReservationDeliveredHoldsDedupKey(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	r := rec("/loyalty", "d1", store.StatusReserved)
	r.DedupKey, r.DedupWindow = "k", time.Hour
	mustInsert(t, b, single(r, "{}"), false)
	if err := b.MarkDelivered(ctx, "/loyalty", "d1", store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	again := rec("/loyalty", "d2", store.StatusPending)
	again.DedupKey, again.DedupWindow = "k", time.Hour
	if res := mustInsert(t, b, single(again, "{}"), true); res[0].Inserted || res[0].ExistingID != "d1" || res[0].Existing != store.StatusDelivered {
		t.Fatalf("within the window: %+v", res)
	}
}

// Purge takes reservations too; List pages through them and stored records
// in one order.
func TestReservationsListedAndPurged(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range 6 {
		st := store.StatusPending
		if i%2 == 1 {
			st = store.StatusReserved
		}
		r := rec("/pay", fmt.Sprint("r", i), st)
		r.ReceivedAt = base.Add(time.Duration(i) * time.Minute)
		mustInsert(t, b, single(r, "{}"), false)
	}
	var ids []string
	f := store.Filter{Limit: 4}
	for {
		page, next, err := b.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, listIDs(page)...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if fmt.Sprint(ids) != "[r5 r4 r3 r2 r1 r0]" {
		t.Fatalf("listed %v", ids)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay"}); err != nil || n != 6 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := b.Get(ctx, "/pay", "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged reservation: %v", err)
	}
}
