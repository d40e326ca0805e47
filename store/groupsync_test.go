package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	t.Logf("%d waits, %d syncs", waits, syncs)
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
			_, err := b.Insert(context.Background(), single(rec("/pay", fmt.Sprint("w", i), StatusPending), "{}"), true)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrClosed):
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
	if c[StatusPending] != int(ok.Load()) {
		t.Fatalf("%d inserts succeeded, %d stored", ok.Load(), c[StatusPending])
	}
}

func TestClosedStore(t *testing.T) {
	b, _ := openTest(t, Options{})
	if err := b.Destruct(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["Insert"] = b.Insert(ctx, single(rec("/a", "b", StatusPending), ""), true)
	_, checks["Get"] = b.Get(ctx, "/a", "b")
	_, checks["RawBody"] = b.RawBody(ctx, "/a", "b")
	_, checks["Update"] = b.Update(ctx, "/a", "b", false, func(*Record) error { return nil })
	checks["Release"] = b.Release(ctx, "/a", "b")
	_, checks["Claim"] = b.Claim(ctx, "o", []string{"/a"}, time.Now(), time.Minute, 1)
	_, _, checks["List"] = b.List(ctx, Filter{})
	_, checks["Counts"] = b.Counts(ctx)
	_, checks["Purge"] = b.Purge(ctx, Filter{})
	_, checks["SweepBodies"] = b.SweepBodies(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Destruct: %v", err)
	}
}
