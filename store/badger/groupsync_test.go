package badger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Every waiter must be released by a sync that started after it committed,
// and concurrent waiters must share syncs.
func TestGroupSyncerCoversCommits(t *testing.T) {
	var committed, syncedUpTo atomic.Int64
	g := &groupSyncer{sync: func() error {
		upTo := committed.Load() // everything committed before the sync starts
		time.Sleep(2 * time.Millisecond)
		syncedUpTo.Store(upTo)
		return nil
	}}
	const writers, rounds = 64, 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				me := committed.Add(1)
				if err := g.wait(); err != nil {
					t.Error(err)
					return
				}
				if got := syncedUpTo.Load(); got < me {
					t.Errorf("released by a sync covering commits up to %d, mine is %d", got, me)
					return
				}
			}
		}()
	}
	wg.Wait()
	g.drain()
	syncs, waits := g.syncs.Load(), g.waits.Load()
	if waits != writers*rounds {
		t.Fatalf("waits %d", waits)
	}
	if syncs*4 > waits {
		t.Fatalf("%d syncs for %d waits: syncs are not shared", syncs, waits)
	}
	// The batch-size histogram accounts for every sync and every write.
	var bucketed, maxWrites uint64
	for i, n := range g.batches.Counts() {
		bucketed += n
		if i < len(store.SyncBatchBounds) {
			maxWrites += n * store.SyncBatchBounds[i]
		} else if n > 0 {
			maxWrites = waits // over the largest bound
		}
	}
	if bucketed != syncs || maxWrites < waits {
		t.Fatalf("batch histogram %v: %d syncs bucketed of %d, room for %d writes of %d", g.batches.Counts(), bucketed, syncs, maxWrites, waits)
	}
	t.Logf("%d waits, %d syncs", waits, syncs)
}

// Under load, a sync waits for the writes still being committed, which then
// share it; a write that finds the syncer idle is synced at once; and the
// wait is bounded when the writes never come.
func TestGroupSyncerLingersForCommittingWrites(t *testing.T) {
	var committing atomic.Int64
	asked := make(chan struct{}, 1) // the loop looked at the committing writes
	syncing := make(chan struct{}, 16)
	release := make(chan struct{})
	g := &groupSyncer{
		sync: func() error {
			syncing <- struct{}{}
			<-release
			return nil
		},
		committing: func() int64 {
			select {
			case asked <- struct{}{}:
			default:
			}
			return committing.Load()
		},
		nudge: make(chan struct{}, 1),
	}

	// Idle: the first write's sync starts without lingering, although a
	// write is being committed.
	committing.Store(1)
	first := g.join(1)
	<-syncing
	if n := g.lingers.Load(); n != 0 {
		t.Fatalf("a write to an idle syncer lingered (%d)", n)
	}
	// Busy: a write arrives during the sync, and another is still being
	// committed when the sync ends, so the next sync waits for it.
	second := g.join(1)
	release <- struct{}{}
	if err := first.wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-syncing:
		t.Fatal("the busy syncer did not wait for the committing write")
	case <-time.After(10 * time.Second):
		t.Fatal("the busy syncer neither waited nor synced")
	}
	third := g.join(1) // the committing write, committed
	committing.Store(0)
	g.wake()
	<-syncing
	if second != third {
		t.Fatal("the write committed during the wait got a sync of its own")
	}
	release <- struct{}{}
	if err := third.wait(); err != nil {
		t.Fatal(err)
	}

	// A write that never joins holds the next sync up only for lingerMax.
	committing.Store(1)
	fourth := g.join(1)
	<-syncing
	fifth := g.join(1)
	release <- struct{}{}
	<-syncing // after at most lingerMax
	release <- struct{}{}
	for _, b := range []*syncBatch{fourth, fifth} {
		if err := b.wait(); err != nil {
			t.Fatal(err)
		}
	}
	g.drain()
	if got := g.syncs.Load(); got != 4 {
		t.Errorf("%d syncs, want 4", got)
	}
}

func TestGroupSyncerError(t *testing.T) {
	boom := errors.New("disk on fire")
	fail := true
	g := &groupSyncer{sync: func() error {
		if fail {
			return boom
		}
		return nil
	}}
	if err := g.wait(); !errors.Is(err, boom) {
		t.Fatalf("sync error not returned: %v", err)
	}
	g.drain()
	fail = false
	if err := g.wait(); err != nil {
		t.Fatalf("later sync: %v", err)
	}
	g.drain()
}

func TestCloseWaitsForDurableWrites(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Insert(context.Background(), single(rec("/pay", fmt.Sprint("w", i), store.StatusPending), "{}"), true)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, store.ErrClosed):
				t.Error(err)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := b.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c[store.StatusPending] != int(ok.Load()) {
		t.Fatalf("%d inserts succeeded, %d stored", ok.Load(), c[store.StatusPending])
	}
}

func TestClosedStore(t *testing.T) {
	b, _ := openTest(t, Options{})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["Insert"] = b.Insert(ctx, single(rec("/a", "b", store.StatusPending), ""), true)
	_, checks["Get"] = b.Get(ctx, "/a", "b")
	_, checks["RawBody"] = b.RawBody(ctx, "/a", "b")
	checks["MarkDelivered"] = b.MarkDelivered(ctx, "/a", "b", store.Attempt{})
	checks["RecordAttempt"] = b.RecordAttempt(ctx, "/a", "b", "/a", "o", store.Attempt{}, store.Delivered())
	checks["ReleaseLease"] = b.ReleaseLease(ctx, "/a", "b", "/a", "o")
	_, checks["RecordReplay"] = b.RecordReplay(ctx, "/a", "b", "/a", store.Attempt{}, false)
	_, checks["Skip"] = b.Skip(ctx, "/a", "b", "/a")
	_, checks["DeliveryCounts"] = b.DeliveryCounts(ctx)
	checks["Release"] = b.Release(ctx, "/a", "b", time.Time{}, nil)
	_, checks["Claim"] = b.Claim(ctx, "o", []string{"/a"}, time.Now(), time.Minute, 1)
	_, _, checks["List"] = b.List(ctx, store.Filter{})
	_, checks["Counts"] = b.Counts(ctx)
	_, checks["Purge"] = b.Purge(ctx, store.Filter{})
	_, checks["SweepBodies"] = b.SweepBodies(ctx)
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Destruct: %v", err)
	}
}

// The newest log of each kind is synced every time, a rotated one once, and
// the directory whenever a log file appeared.
func TestLogSyncerSyncsActiveAlwaysRotatedOnce(t *testing.T) {
	dir := t.TempDir()
	create := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	calls := map[string]int{}
	l := newLogSyncer(dir)
	l.datasync = func(f *os.File) error {
		calls[filepath.Base(f.Name())]++
		return datasync(f)
	}
	l.fsyncDir = func(path string) error {
		calls[filepath.Base(path)]++
		return fsyncPath(path)
	}
	create("00001.mem")
	create("000001.vlog")
	create("MANIFEST")
	for range 3 {
		if err := l.sync(); err != nil {
			t.Fatal(err)
		}
	}
	create("00002.mem") // the memtable rotated
	for range 2 {
		if err := l.sync(); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{
		"00001.mem":        4, // active for four syncs (three, then the rotation's first), then no more
		"00002.mem":        2,
		"000001.vlog":      5,
		filepath.Base(dir): 2, // first sync, and when 00002.mem appeared
	}
	for name, n := range want {
		if calls[name] != n {
			t.Errorf("%s synced %d times, want %d (all: %v)", name, calls[name], n, calls)
		}
	}
	if calls["MANIFEST"] != 0 {
		t.Errorf("MANIFEST synced: Badger syncs it itself")
	}

	// Descriptors are kept for the files still synced, not for a rotated
	// one once it is synced for good.
	if len(l.open) != 2 || l.open["00002.mem"] == nil || l.open["000001.vlog"] == nil {
		t.Errorf("open descriptors %v, want 00002.mem and 000001.vlog", slices.Collect(maps.Keys(l.open)))
	}

	// A log that vanished between the listing and its sync (flushed or
	// collected) is not an error, and its descriptor is let go.
	create("00003.mem")
	l.openFile = func(path string) (*os.File, error) {
		if filepath.Base(path) == "00003.mem" {
			return nil, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
		}
		return os.Open(path)
	}
	if err := l.sync(); err != nil {
		t.Fatalf("a vanished log failed the sync: %v", err)
	}
	if l.open["000001.vlog"] == nil {
		t.Fatal("no descriptor kept for the active value log")
	}
	if err := os.Remove(filepath.Join(dir, "000001.vlog")); err != nil { // collected
		t.Fatal(err)
	}
	if err := l.sync(); err != nil {
		t.Fatal(err)
	}
	if l.open["000001.vlog"] != nil {
		t.Error("the descriptor of a removed log is still open")
	}
	l.close()
	if len(l.open) != 0 {
		t.Errorf("descriptors left after close: %v", l.open)
	}
}
