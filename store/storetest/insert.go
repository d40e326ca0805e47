package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func testInsertGetDuplicate(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()

	res := mustInsert(t, b, single(rec("/usaepay", "e1", store.StatusPending), `{"a":1}`), true)
	if !res[0].Inserted {
		t.Fatalf("first insert: %+v", res)
	}
	res = mustInsert(t, b, single(rec("/usaepay", "e1", store.StatusPending), `{"a":1}`), true)
	if res[0].Inserted || res[0].Existing != store.StatusPending {
		t.Fatalf("second insert: %+v", res)
	}
	res = mustInsert(t, b, single(rec("/usaepay", "e1", store.StatusPending), `{"a":1}`), false)
	if res[0].Inserted || res[0].Existing != store.StatusPending || res[0].ExistingID != "e1" {
		t.Fatalf("non-durable duplicate: %+v", res)
	}

	got, err := b.Get(ctx, "/usaepay", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || got.Type != "transaction.sale.success" || got.BatchSize != 1 || got.ReceivedAt.IsZero() {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(string(got.Event), `"id":"e1"`) || got.Headers.Get("Content-Type") != "application/json" {
		t.Fatalf("event or headers lost: %s %v", got.Event, got.Headers)
	}
	body, err := b.RawBody(ctx, "/usaepay", "e1")
	if err != nil || string(body) != `{"a":1}` {
		t.Fatalf("raw body %q, %v", body, err)
	}

	if _, err := b.Get(ctx, "/usaepay", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	if _, err := b.RawBody(ctx, "/usaepay", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing body: %v", err)
	}
}

func testKeysAreUnambiguous(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	if r := mustInsert(t, b, single(rec("/a", "b/c", store.StatusPending), "1"), false); !r[0].Inserted {
		t.Fatal("first not inserted")
	}
	if r := mustInsert(t, b, single(rec("/a/b", "c", store.StatusPending), "2"), false); !r[0].Inserted {
		t.Fatal(`source "/a/b" id "c" collided with source "/a" id "b/c"`)
	}
	// An id may contain NUL; a source may not.
	if r := mustInsert(t, b, single(rec("/a", "x\x00y", store.StatusPending), "3"), false); !r[0].Inserted {
		t.Fatal("NUL id not inserted")
	}
	if _, err := b.Insert(ctx, single(rec("/a\x00b", "c", store.StatusPending), ""), false); err == nil {
		t.Fatal("source with NUL accepted")
	}
	if _, err := b.Insert(ctx, single(rec("/a", "", store.StatusPending), ""), false); err == nil {
		t.Fatal("empty id accepted")
	}
	for _, k := range [][2]string{{"/a", "b/c"}, {"/a/b", "c"}, {"/a", "x\x00y"}} {
		got, err := b.Get(ctx, k[0], k[1])
		if err != nil || got.Source != k[0] || got.ID != k[1] {
			t.Fatalf("%q: %+v %v", k, got, err)
		}
	}
}

func testInsertConcurrentSameKey(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	const n = 50
	var inserted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := b.Insert(context.Background(), single(rec("/usaepay", "same", store.StatusPending), "{}"), true)
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
		t.Fatalf("%d of %d concurrent inserts stored the same key", got, n)
	}
}

func testBatchSharesBody(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	body := []byte(`{"type":"account.expiring_points_notification","data":[` + strings.Repeat(`{"x":1},`, 3000) + `{"x":2}]}`)
	in := &store.Ingest{RawBody: body}
	for i := range 1000 {
		in.Records = append(in.Records, rec("/loyalty", fmt.Sprintf("b%04d", i), store.StatusPending))
		in.Records[i].BatchIndex = i
	}
	// A batch may repeat an item; the repeat is a duplicate of the first.
	in.Records = append(in.Records, rec("/loyalty", "b0005", store.StatusPending))
	res := mustInsert(t, b, in, true)
	for i, r := range res[:1000] {
		if !r.Inserted {
			t.Fatalf("record %d not inserted", i)
		}
	}
	if res[1000].Inserted || res[1000].Existing != store.StatusPending {
		t.Fatalf("in-batch repeat: %+v", res[1000])
	}
	for _, id := range []string{"b0000", "b0999"} {
		got, err := b.RawBody(ctx, "/loyalty", id)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: body of %d bytes, %v", id, len(got), err)
		}
	}
	got, _ := b.Get(ctx, "/loyalty", "b0999")
	if got.BatchIndex != 999 || got.BatchSize != 1001 {
		t.Fatalf("batch placement %d/%d", got.BatchIndex, got.BatchSize)
	}
}

func testReopenPersistence(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	for i := range 100 {
		mustInsert(t, b, single(rec("/pay", fmt.Sprint("p", i), store.StatusPending), fmt.Sprint("body", i)), true)
	}
	closed := b
	b = restart(t, b, reopen)
	if err := closed.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := closed.Get(ctx, "/pay", "p1"); err == nil {
		t.Fatal("Get on a closed store succeeded")
	}
	for i := range 100 {
		id := fmt.Sprint("p", i)
		got, err := b.Get(ctx, "/pay", id)
		if err != nil || got.Status != store.StatusPending {
			t.Fatalf("%s after reopen: %+v %v", id, got, err)
		}
		if body, _ := b.RawBody(ctx, "/pay", id); string(body) != fmt.Sprint("body", i) {
			t.Fatalf("%s body %q", id, body)
		}
	}
	if res := mustInsert(t, b, single(rec("/pay", "p7", store.StatusPending), "{}"), false); res[0].Inserted {
		t.Fatal("duplicate accepted after reopen")
	}
}
