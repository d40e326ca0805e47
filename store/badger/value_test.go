package badger

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// A value that value-log GC moves between a transaction's lookup of its key
// and the read of its value is read again where GC put it. Badger hands such
// a read an empty value and no error; a live event's body read right after an
// idle reclaim came back that way, as a "truncated payload entry".
func TestValueMovedByGCDuringReadIsReadAgain(t *testing.T) {
	b, _ := openTest(t, Options{GCInterval: -1, ValueLogFileSize: 1 << 20, MinFreeSpace: -1})
	ctx := context.Background()

	// About 8 KB a payload, 120 to a value-log file: the live event sits
	// in the second file among events that are then purged, and the third
	// is the one Badger writes to, which GC leaves alone.
	body := `{"pad":"` + strings.Repeat("x", 8<<10) + `"}`
	for i := range 300 {
		r := rec("/junk", fmt.Sprint(i), store.StatusPending)
		if i == 150 {
			r = rec("/pay", "live", store.StatusPending)
		}
		mustInsert(t, b, single(r, body+r.ID), false)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/junk"}); err != nil || n != 299 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	// A later commit, so that the reading transaction below does not keep
	// the purge's deletions from compaction.
	mustInsert(t, b, single(rec("/other", "later", store.StatusPending), "{}"), false)

	key := recordKey("/pay", "live")
	attempts := 0
	var got []byte
	err := b.view(func(txn *badger.Txn) error {
		attempts++
		item, err := txn.Get(payloadKey(key))
		if err != nil {
			return err
		}
		if attempts == 1 {
			// GC rewrites the file of the value, and deletes it, after
			// the lookup and before the read.
			if err := b.reclaim(ctx); err != nil {
				return err
			}
		}
		return itemValue(item, func(v []byte) error {
			_, raw, err := splitPayloadValue(v)
			got = bytes.Clone(raw)
			return err
		})
	})
	if err != nil {
		t.Fatalf("reading the payload: %v", err)
	}
	if string(got) != body+"live" {
		t.Fatalf("payload body: %d bytes, want %d", len(got), len(body+"live"))
	}
	if attempts != 2 {
		t.Fatalf("%d reads: GC did not move the value during the first one, so this test tested nothing", attempts)
	}
}
