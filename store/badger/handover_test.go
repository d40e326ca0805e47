package badger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// A just-stored event is claimed from memory: even a stored copy that can
// no longer be read does not stand in the way.
func TestHandoverClaimsFromMemory(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "h1", store.StatusPending), "{}"), true)
	if err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set(recordKey("/pay", "h1"), []byte("unreadable"))
	}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Claim(ctx, "a", []string{"/pay"}, time.Now(), time.Minute, 10)
	if err != nil || len(c) != 1 || c[0].Record.ID != "h1" || c[0].Destination != "/pay" || c[0].Record.Deliveries[0].LeaseOwner != "a" || len(c[0].Record.Event) == 0 {
		t.Fatalf("claim: %v %v", claimedIDs(c), err)
	}
	if again, _ := b.Claim(ctx, "b", []string{"/pay"}, time.Now(), time.Minute, 10); len(again) != 0 {
		t.Fatalf("handed out twice: %v", claimedIDs(again))
	}
}

// A record changed or deleted after it was stored is claimed as stored, or
// not at all.
func TestHandoverFallsBackToTheStore(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "replayed", store.StatusPending), "{}"), true)
	mustInsert(t, b, single(rec("/pay", "purged", store.StatusPending), "{}"), true)
	if _, err := b.RecordReplay(ctx, "/pay", "replayed", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 500}, false); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay", Status: store.StatusPending, Limit: 1}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	c, err := b.Claim(ctx, "a", []string{"/pay"}, time.Now(), time.Minute, 10)
	if err != nil || len(c) != 1 || c[0].Record.ID != "replayed" {
		t.Fatalf("claim (the purged record must not come back): %v %v", claimedIDs(c), err)
	}
	if len(c[0].Record.Deliveries[0].Attempts) != 1 {
		t.Fatalf("the replayed record was handed out as first stored: %+v", c[0])
	}
}

// Past the handover's bound the due index has the rest; nothing is handed
// out twice.
func TestHandoverOverflowGoesToTheScan(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	const n = handoverMax + 100
	for i := range n {
		mustInsert(t, b, single(rec("/pay", fmt.Sprint("o", i), store.StatusPending), "{}"), false)
	}
	seen := map[string]bool{}
	for range 2 * n / MaxClaim {
		c, err := b.Claim(ctx, "a", []string{"/pay"}, time.Now(), time.Minute, MaxClaim)
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range c {
			if seen[cl.Record.ID] {
				t.Fatalf("%s claimed twice", cl.Record.ID)
			}
			seen[cl.Record.ID] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
}
