package badger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func TestClaimResumesAfterReopen(t *testing.T) {
	b, dir := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "r", store.StatusPending), "{}"), true)
	if c, _ := b.Claim(ctx, "old", []string{"/pay"}, time.Now(), time.Hour, 1); len(c) != 1 {
		t.Fatal("claim")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	// Leases die with the process that held them: the claimed event is
	// due again at once, not an hour later.
	if got, err := b2.Get(ctx, "/pay", "r"); err != nil || got.Deliveries[0].LeaseOwner != "" || !got.Deliveries[0].LeaseUntil.IsZero() {
		t.Fatalf("lease persisted: %+v %v", got, err)
	}
	c, err := b2.Claim(ctx, "new", []string{"/pay"}, time.Now(), time.Minute, 1)
	if err != nil || len(c) != 1 || c[0].Record.ID != "r" {
		t.Fatalf("pending work after restart: %v %v", c, err)
	}
}

func listIDs(rs []*store.Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestBodySweep(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	b.bodyGrace = 0
	mk := func(prefix string) *store.Ingest {
		in := &store.Ingest{RawBody: []byte(`{"data":[1,2,3]}`)}
		for i := range 3 {
			in.Records = append(in.Records, rec("/loyalty", fmt.Sprint(prefix, i), store.StatusPending))
		}
		return in
	}
	mustInsert(t, b, mk("keep"), false)
	mustInsert(t, b, mk("drop"), false)
	// A batch whose records are all duplicates writes no body.
	mustInsert(t, b, mk("drop"), false)
	if n, err := b.SweepBodies(ctx); err != nil || n != 0 {
		t.Fatalf("sweep with live records: %d %v", n, err)
	}
	if n, _ := b.Purge(ctx, store.Filter{Source: "/loyalty", Type: "transaction.sale.success", From: time.Now().Add(-time.Hour)}); n != 6 {
		// both batches match; keep one by re-inserting below
		t.Fatalf("purged %d", n)
	}
	mustInsert(t, b, mk("keep"), false)
	n, err := b.SweepBodies(ctx)
	if err != nil || n != 2 {
		t.Fatalf("sweep after purge: %d %v", n, err)
	}
	if body, err := b.RawBody(ctx, "/loyalty", "keep1"); err != nil || string(body) != `{"data":[1,2,3]}` {
		t.Fatalf("live body: %q %v", body, err)
	}
	b.bodyGrace = time.Hour
	if n, _ := b.Purge(ctx, store.Filter{}); n != 3 {
		t.Fatal("purge")
	}
	if n, _ := b.SweepBodies(ctx); n != 0 {
		t.Fatal("swept a young body")
	}
}

func TestClaimFindsEntriesBelowTheScanMark(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	now := time.Now()
	first := rec("/pay", "first", store.StatusPending)
	first.Deliveries[0].NextAttemptAt = now
	mustInsert(t, b, single(first, "{}"), true)
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 1 {
		t.Fatal("claim first")
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed a leased record")
	}
	// A record due earlier than anything the scans have seen, as a replay
	// or a clock step back could write: the write lowers the mark.
	early := rec("/pay", "early", store.StatusPending)
	early.Deliveries[0].NextAttemptAt = now.Add(-time.Hour)
	mustInsert(t, b, single(early, "{}"), true)
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 1 || c[0].Record.ID != "early" {
		t.Fatalf("early record not claimed: %v", claimedIDs(c))
	}

	// A mark that is wrong (a write that raced a scan) only delays: the
	// periodic scan from the start finds what lies below it.
	stranded := rec("/pay", "stranded", store.StatusPending)
	stranded.Deliveries[0].NextAttemptAt = now.Add(-2 * time.Hour)
	mustInsert(t, b, single(stranded, "{}"), true)
	b.due.mu.Lock()
	b.due.mark("/pay").low = now
	b.due.mark("/pay").wrote = false
	b.due.mu.Unlock()
	deadline := time.Now().Add(3 * dueFullScanEvery)
	for {
		c, err := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) == 1 && c[0].Record.ID == "stranded" {
			break
		}
		if len(c) != 0 || time.Now().After(deadline) {
			t.Fatalf("stranded record: claimed %v", claimedIDs(c))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two scans that overlap (two engines during a reload) must each learn of a
// write made while either ran.
func TestDueMarkOverlappingScans(t *testing.T) {
	d := newDueMarks()
	t0 := time.Now()
	d.begin("/pay", t0) // the first scan is a full one
	d.scanned("/pay", t0, true)
	a := d.begin("/pay", t0)
	d.wrote("/pay", t0.Add(time.Second))
	b := d.begin("/pay", t0)
	d.scanned("/pay", t0.Add(time.Hour), true) // b's snapshot saw a later entry only
	d.scanned("/pay", t0.Add(time.Hour), true) // so did a's, taken before the write
	if !a.Equal(t0) || !b.Equal(t0) {
		t.Fatalf("scans began at %v and %v, want the mark %v", a, b, t0)
	}
	if got := d.begin("/pay", t0); got.After(t0.Add(time.Second)) {
		t.Fatalf("mark %v passed the entry written at %v", got, t0.Add(time.Second))
	}
}

// A record that cannot be read is skipped; the other due events of its
// source are still handed out.
func TestClaimSkipsAnUnreadableRecord(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	now := time.Now()
	for i, id := range []string{"broken", "ok"} {
		r := rec("/pay", id, store.StatusPending)
		r.Deliveries[0].NextAttemptAt = now.Add(time.Duration(i) * time.Millisecond)
		mustInsert(t, b, single(r, "{}"), false)
	}
	if err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(payloadKey(recordKey("/pay", "broken")))
	}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Claim(ctx, "a", []string{"/pay"}, now.Add(time.Second), time.Minute, 10)
	if err != nil || len(c) != 1 || c[0].Record.ID != "ok" {
		t.Fatalf("claim: %v %v", claimedIDs(c), err)
	}
	if b.leases.held(leaseKey(string(recordKey("/pay", "broken")), "/pay"), now) {
		t.Fatal("the unreadable record kept its lease")
	}
}
