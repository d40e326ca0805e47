package badger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Only a lane's head has a due entry: the deliveries waiting behind it, a
// parked lane's included, cost Claim's scan nothing. The head's successor
// gets its entry in the write that lets it go.
func TestOnlyLaneHeadsAreDue(t *testing.T) {
	b, dir := openTest(t, Options{})
	ctx := context.Background()
	laned := func(id, lane string) *store.Record {
		r := rec("/pay", id, store.StatusPending)
		r.Deliveries[0].Lane = lane
		return r
	}
	in := &store.Ingest{RawBody: []byte("[]")}
	for i := range 50 {
		in.Records = append(in.Records, laned(fmt.Sprint("a", i), "txn-a"))
	}
	in.Records = append(in.Records, laned("b0", "txn-b"), rec("/pay", "free", store.StatusPending))
	mustInsert(t, b, in, true)
	if n := keyCount(t, b, prefixDue); n != 3 {
		t.Fatalf("%d due entries, want 3 (two heads, one unordered)", n)
	}
	if n := keyCount(t, b, prefixLane); n != 51 {
		t.Fatalf("%d lane entries, want 51", n)
	}
	now := time.Now()
	c, err := b.Claim(ctx, "w", []string{"/pay"}, now, time.Minute, 10)
	if err != nil || len(c) != 3 {
		t.Fatalf("claim: %v %v", claimedIDs(c), err)
	}
	for _, cl := range c {
		d := store.Delivered()
		if cl.Record.ID == "a0" {
			d = store.Dead(store.DeadGone)
		}
		if err := b.RecordAttempt(ctx, "/pay", cl.Record.ID, "/pay", "w", store.Attempt{Number: 1, At: now, Status: 200}, d); err != nil {
			t.Fatal(err)
		}
	}
	// Parked: a0 dead, 49 waiting, none of them due.
	if n := keyCount(t, b, prefixDue); n != 0 {
		t.Fatalf("%d due entries with the lane parked, want 0", n)
	}
	if _, err := b.Skip(ctx, "/pay", "a0", "/pay"); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, b, prefixDue); n != 1 {
		t.Fatalf("%d due entries after the skip, want a1's", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if c, err := b.Claim(ctx, "w", []string{"/pay"}, now, time.Minute, 10); err != nil || len(c) != 1 || c[0].Record.ID != "a1" {
		t.Fatalf("after a restart: %v %v", claimedIDs(c), err)
	}
}
