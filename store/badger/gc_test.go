package badger

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// valueLogDiskUse is the disk space the value-log files of the badger
// store in dir take.
func valueLogDiskUse(t *testing.T, dir string) int64 {
	t.Helper()
	return testdisk.Allocated(t, filepath.Join(dir, "*.vlog"))
}

// Expired events give their value-log space back on a store that nothing
// writes to: the GC schedule sweeps their payloads and, finding the store
// idle, flushes and compacts what Badger needs to see those deletions
// before value-log GC can collect them. Live events are untouched.
func TestIdleStoreReclaimsExpiredEvents(t *testing.T) {
	old := gcCheckEvery
	gcCheckEvery = 20 * time.Millisecond
	t.Cleanup(func() { gcCheckEvery = old })
	opts := Options{GCInterval: -1, ValueLogFileSize: 1 << 20, MinFreeSpace: -1}
	b, dir := openTest(t, opts)
	ctx := context.Background()

	// Payloads of about 8 KB go to the value log (threshold 4 KiB).
	pad := strings.Repeat("x", 4<<10)
	body := `{"pad":"` + pad + `"}`
	for i := range 1000 {
		// Matched no destination: settled at once, gone after its
		// retention.
		r := rec("/pay", fmt.Sprintf("gone-%d", i), store.StatusPending)
		r.Deliveries = nil
		r.Retention = time.Second
		r.Event = mustJSON(map[string]string{"id": r.ID, "pad": pad})
		mustInsert(t, b, single(r, body), false)
	}
	for i := range 20 {
		r := rec("/pay", fmt.Sprintf("live-%d", i), store.StatusPending)
		r.Event = mustJSON(map[string]string{"id": r.ID, "pad": pad})
		mustInsert(t, b, single(r, body+fmt.Sprint(i)), true)
	}
	// The store is then opened again, with its GC schedule, and left
	// alone: nothing writes to it but the schedule itself.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	opts.GCInterval = 200 * time.Millisecond
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// About 8 MB were written to the value log. What the live events
	// take, the file Badger is writing to (1 MiB) and the one a rewrite
	// may be filling stay.
	const left = 3 << 20
	full := valueLogDiskUse(t, dir)
	testwait.For(t, "the value log of the expired events reclaimed", func() bool {
		return valueLogDiskUse(t, dir) <= left
	})
	t.Logf("value log: %d bytes after the inserts, %d once the events expired (%d reclaims)", full, valueLogDiskUse(t, dir), b.Stats().IdleReclaims)
	for i := range 20 {
		raw, err := b.RawBody(ctx, "/pay", fmt.Sprintf("live-%d", i))
		if err != nil || string(raw) != body+fmt.Sprint(i) {
			t.Fatalf("live event %d after the reclaim: %d bytes, %v", i, len(raw), err)
		}
	}
}
