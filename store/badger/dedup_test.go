package badger

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// The dedup entry is a Badger TTL entry: once its window is over it goes by
// itself, without a sweep (Badger's expiry has a granularity of a second).
func TestDedupEntryExpiresByItself(t *testing.T) {
	b, _ := openTest(t, Options{GCInterval: -1})
	r := rec("/loyalty", "x1", store.StatusPending)
	r.DedupKey, r.DedupWindow = "k", time.Millisecond
	mustInsert(t, b, single(r, `{}`), false)
	key := dedupKey("/loyalty", "k")
	get := func() error {
		return b.db.View(func(txn *badger.Txn) error { _, err := txn.Get(key); return err })
	}
	if err := get(); err != nil {
		t.Fatalf("dedup entry not written: %v", err)
	}
	// Badger drops the entry on the wall clock, which the store's Now
	// option does not reach: this waits for the wall-clock second to pass.
	testwait.For(t, "the dedup entry to expire after its window", func() bool {
		return errors.Is(get(), badger.ErrKeyNotFound)
	})
}
