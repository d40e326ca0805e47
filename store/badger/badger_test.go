package badger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, dir
}

// rec is a record with one delivery, to a destination named after its
// source, in status st (pending or reserved).
func rec(source, id string, st store.Status) *store.Record {
	return &store.Record{
		Source:     source,
		ID:         id,
		Provider:   "usaepay",
		Type:       "transaction.sale.success",
		Deliveries: []store.Delivery{{Destination: source, Status: st}},
		Event:      mustJSON(map[string]string{"specversion": "1.0", "id": id, "source": source}),
		Headers:    map[string][]string{"Content-Type": {"application/json"}},
	}
}

func claimedIDs(cs []store.Claimed) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.Record.ID)
	}
	return ids
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func single(r *store.Record, body string) *store.Ingest {
	return &store.Ingest{RawBody: []byte(body), Records: []*store.Record{r}}
}

func mustInsert(t testing.TB, b *Store, in *store.Ingest, durable bool) []store.InsertResult {
	t.Helper()
	res, err := b.Insert(context.Background(), in, durable)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Two configurations alive during a reload share one *Store; this is the
// same as two callers, but check it across two cache-less handles of the
// same store too, so the guarantee rests on Badger's conflict detection and
// not on the cache.
func TestInsertConcurrentNoCache(t *testing.T) {
	b, _ := openTest(t, Options{CacheSize: -1})
	const n = 50
	var inserted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := store.StatusPending
			if i%2 == 0 {
				st = store.StatusReserved
			}
			res, err := b.Insert(context.Background(), single(rec("/usaepay", "k", st), "{}"), i%3 == 0)
			if err != nil {
				t.Error(err)
				return
			}
			if res[0].Inserted {
				inserted.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := inserted.Load(); got != 1 {
		t.Fatalf("%d inserts stored the same key", got)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("second open of a locked directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "db"), Options{}); err == nil || !strings.Contains(err.Error(), "opening badger store") {
		t.Fatalf("directory under a file: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ro, Options{}); err == nil {
			t.Fatal("opened an unwritable directory")
		}
	}
}

// A durable duplicate must not be acknowledged on the strength of a cached
// copy that was never synced.
func TestDurableDuplicateOfUnsyncedWriteSyncs(t *testing.T) {
	b, _ := openTest(t, Options{})
	mustInsert(t, b, single(rec("/pay", "u", store.StatusPending), "{}"), false)
	before := b.Stats().Waits
	if res := mustInsert(t, b, single(rec("/pay", "u", store.StatusPending), "{}"), true); res[0].Inserted {
		t.Fatal("duplicate inserted")
	}
	if b.Stats().Waits != before+1 {
		t.Fatal("durable duplicate of an unsynced write did not wait for a sync")
	}
	// Once synced, hot duplicates are answered from memory.
	mustInsert(t, b, single(rec("/pay", "s", store.StatusPending), "{}"), true)
	before = b.Stats().Waits
	mustInsert(t, b, single(rec("/pay", "s", store.StatusPending), "{}"), true)
	if b.Stats().Waits != before {
		t.Fatal("durable duplicate of a synced write waited for a sync")
	}
}

// A batch too large for one Badger transaction is inserted in chunks, each
// record still insert-if-absent, all sharing one body.
func TestLargeBatchChunked(t *testing.T) {
	b, _ := openTest(t, Options{MemTableSize: 1 << 20}) // transactions up to ~150 KB
	ctx := context.Background()
	body := []byte(strings.Repeat("z", 200<<10))
	in := &store.Ingest{RawBody: body}
	for i := range 1000 {
		r := rec("/loyalty", fmt.Sprintf("big%04d", i), store.StatusPending)
		r.Event = mustJSON(map[string]string{"id": r.ID, "pad": strings.Repeat("p", 500)})
		in.Records = append(in.Records, r)
	}
	// Some are already there.
	mustInsert(t, b, single(rec("/loyalty", "big0500", store.StatusPending), "x"), false)
	res := mustInsert(t, b, in, true)
	for i, r := range res {
		if r.Inserted == (i == 500) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if res[500].Existing != store.StatusPending {
		t.Fatalf("existing %+v", res[500])
	}
	for _, id := range []string{"big0000", "big0999"} {
		if got, err := b.RawBody(ctx, "/loyalty", id); err != nil || len(got) != len(body) {
			t.Fatalf("%s body %d bytes, %v", id, len(got), err)
		}
	}
	if c, _ := b.Counts(ctx); c[store.StatusPending] != 1000 {
		t.Fatalf("counts %v", c)
	}
	// A Claim of many large records fits too.
	got, err := b.Claim(ctx, "w", []string{"/loyalty"}, time.Now(), time.Minute, 1000)
	if err != nil || len(got) == 0 {
		t.Fatalf("claim: %d %v", len(got), err)
	}
}

// The value log is collected as soon as it has grown by gcGrowthFiles files,
// long before the scheduled run.
func TestValueLogGCRunsEarlyOnGrowth(t *testing.T) {
	old := gcCheckEvery
	gcCheckEvery = 20 * time.Millisecond
	t.Cleanup(func() { gcCheckEvery = old })
	b, dir := openTest(t, Options{GCInterval: time.Hour, ValueLogFileSize: 1 << 20})

	// Records of about 8 KB go to the value log (threshold 4 KiB); 1,200
	// of them fill more than gcGrowthFiles files of 1 MiB.
	body := `{"pad":"` + strings.Repeat("x", 4<<10) + `"}`
	for i := range 1200 {
		r := rec("/pay", fmt.Sprintf("big-%d", i), store.StatusPending)
		r.Event = json.RawMessage(body)
		mustInsert(t, b, single(r, body), false)
	}
	if n := countValueLogFiles(dir); n <= gcGrowthFiles {
		t.Fatalf("only %d value-log files: the test writes too little", n)
	}
	testwait.For(t, "a value-log GC after the log grew", func() bool { return b.Stats().ValueLogGCRuns > 0 })
}

// keyCount is the number of live keys in b under prefix (payloads, index
// entries), which no listing shows.
func keyCount(t *testing.T, b *Store, prefix string) int {
	t.Helper()
	n := 0
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A single event's canonical event and body are written once, beside a
// record that later states rewrite without them; the payload goes with its
// record.
func TestSingleEventPayload(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	body := strings.Repeat("b", 12<<10)
	r := rec("/pay", "p1", store.StatusPending)
	r.Retention = time.Second
	r.Event = mustJSON(map[string]string{"id": "p1", "pad": strings.Repeat("e", 12<<10)})
	want := string(r.Event)
	mustInsert(t, b, single(r, body), true)

	var stored int
	if err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey("/pay", "p1"))
		if err != nil {
			return err
		}
		stored = int(item.ValueSize())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stored > 2<<10 {
		t.Fatalf("record value is %d bytes: event or body stored in it", stored)
	}
	if c, err := b.Claim(ctx, "o", []string{"/pay"}, time.Now(), time.Minute, 1); err != nil || len(c) != 1 || string(c[0].Record.Event) != want {
		t.Fatalf("claim: %v", err)
	}
	if err := b.RecordAttempt(ctx, "/pay", "p1", "/pay", "o", store.Attempt{Number: 1, At: time.Now(), Status: 200}, store.Delivered()); err != nil {
		t.Fatalf("record attempt: %v", err)
	}
	got, err := b.Get(ctx, "/pay", "p1")
	if err != nil || string(got.Event) != want || got.Status != store.StatusDelivered {
		t.Fatalf("get after update: %+v %v", got, err)
	}
	if raw, err := b.RawBody(ctx, "/pay", "p1"); err != nil || string(raw) != body {
		t.Fatalf("raw body: %d bytes, %v", len(raw), err)
	}
	if recs, _, err := b.List(ctx, store.Filter{}); err != nil || len(recs) != 1 || string(recs[0].Event) != want {
		t.Fatalf("list: %v", err)
	}

	// The record expires after its retention; the sweep then takes its
	// payload, and leaves a live record's alone.
	mustInsert(t, b, single(rec("/pay", "live", store.StatusPending), "{}"), false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Get(ctx, "/pay", "p1"); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delivered record did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, err := b.SweepPayloads(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if n := keyCount(t, b, prefixPayload); n != 1 {
		t.Fatalf("%d payloads left, want the live record's", n)
	}
	// The key used again gets a payload of its own that the sweep keeps.
	again := rec("/pay", "p1", store.StatusPending)
	mustInsert(t, b, single(again, "second"), false)
	if n, err := b.SweepPayloads(ctx); err != nil || n != 0 {
		t.Fatalf("sweep with live records: %d %v", n, err)
	}
	if raw, err := b.RawBody(ctx, "/pay", "p1"); err != nil || string(raw) != "second" {
		t.Fatalf("raw body of the new record: %q %v", raw, err)
	}
	// Purge and Release take the payload with the record.
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay"}); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	res := rec("/pay", "r", store.StatusReserved)
	mustInsert(t, b, single(res, "{}"), false)
	if err := b.Release(ctx, "/pay", "r", res.ReservedUntil, nil); err != nil {
		t.Fatal(err)
	}
	// The released record keeps its payload until it goes.
	if n := keyCount(t, b, prefixPayload); n != 1 {
		t.Fatalf("%d payloads after purge and release, want the released record's", n)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay"}); err != nil || n != 1 {
		t.Fatalf("purge of the released record: %d %v", n, err)
	}
	if n := keyCount(t, b, prefixPayload); n != 0 {
		t.Fatalf("%d payloads left after purge", n)
	}
}
