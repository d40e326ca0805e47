package badger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// The subject index holds one entry per stored record with a subject, for
// as long as the record: a state change rewrites it, retention expires it
// with the record, and purge deletes it. A stale entry would not show in a
// listing (the record it names is gone), so only a count of the entries
// can tell.
func TestSubjectIndexFollowsItsRecords(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		r := rec("/pay", id, store.StatusPending)
		r.Subject, r.Retention = "cus_1", time.Second
		mustInsert(t, b, single(r, "{}"), false)
	}
	mustInsert(t, b, single(rec("/pay", "none", store.StatusPending), "{}"), false)
	if n := keyCount(t, b, prefixSubject); n != 3 {
		t.Fatalf("%d subject entries for 3 records with a subject", n)
	}
	// Delivered by a replay, "a" expires after its retention, entry too.
	if _, err := b.RecordReplay(ctx, "/pay", "a", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, b, prefixSubject); n != 3 {
		t.Fatalf("%d subject entries after a state change, want 3", n)
	}
	testwait.For(t, "the delivered record to expire after its 1s retention", func() bool {
		_, err := b.Get(ctx, "/pay", "a")
		return errors.Is(err, store.ErrNotFound)
	})
	if n := keyCount(t, b, prefixSubject); n != 2 {
		t.Fatalf("%d subject entries after retention expired one record, want 2", n)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay", ID: "b"}); err != nil || n != 1 {
		t.Fatalf("purge by id: %d %v", n, err)
	}
	if n := keyCount(t, b, prefixSubject); n != 1 {
		t.Fatalf("%d subject entries after purging one record, want 1", n)
	}
	if n, err := b.Purge(ctx, store.Filter{Subject: "cus_1"}); err != nil || n != 1 {
		t.Fatalf("purge by subject: %d %v", n, err)
	}
	if n := keyCount(t, b, prefixSubject); n != 0 {
		t.Fatalf("%d subject entries after purging the subject, want 0", n)
	}
	if _, err := b.Get(ctx, "/pay", "none"); err != nil {
		t.Fatalf("the record without a subject went too: %v", err)
	}
}
