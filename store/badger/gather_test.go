package badger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// gatherRig holds every gather loop of a store inside a transaction, so that
// the writes submitted meanwhile wait together for the next batch.
type gatherRig struct {
	t    *testing.T
	b    *Store
	hold chan struct{}
	wg   sync.WaitGroup
}

func newGatherRig(t *testing.T) *gatherRig {
	b, _ := openTest(t, Options{})
	r := &gatherRig{t: t, b: b, hold: make(chan struct{})}
	// One at a time, so that each loop takes one and is held in it.
	for i := range gatherLoops {
		started := make(chan struct{})
		r.submit(fmt.Sprint("hold", i), func(txn *badger.Txn) error {
			close(started)
			<-r.hold
			return txn.Set([]byte(fmt.Sprint("hold", i)), []byte("x"))
		}, context.Background(), nil)
		<-started
	}
	return r
}

// submit writes fn under key in a goroutine; the result goes to res.
func (r *gatherRig) submit(key string, fn func(*badger.Txn) error, ctx context.Context, res *error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.b.gather.write(&gatherOp{ctx: ctx, key: key, size: 1, fn: fn})
		if res != nil {
			*res = err
		}
	}()
}

// queued waits until n writes are pending behind the held loops.
func (r *gatherRig) queued(n int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.b.gather.mu.Lock()
		got := len(r.b.gather.pending)
		r.b.gather.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d writes pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// release lets the held loops finish and waits for every write.
func (r *gatherRig) release() {
	close(r.hold)
	r.wg.Wait()
}

func (r *gatherRig) present(key string) bool {
	r.t.Helper()
	err := r.b.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(key))
		return err
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		r.t.Fatal(err)
	}
	return err == nil
}

// Writes that arrive while the loops are busy share one transaction; an op's
// error reaches that op alone, and the others are written.
func TestGatherSharesTransactions(t *testing.T) {
	r := newGatherRig(t)
	const n = 10
	errs := make([]error, n)
	for i := range n {
		key := fmt.Sprint("k", i)
		r.submit(key, func(txn *badger.Txn) error {
			if i == 4 {
				return errors.New("refused")
			}
			return txn.Set([]byte(key), []byte("v"))
		}, context.Background(), &errs[i])
	}
	r.queued(n)
	batchesBefore := r.b.gather.batches.Load()
	r.release()
	for i := range n {
		if i == 4 {
			if errs[i] == nil || errs[i].Error() != "refused" {
				t.Fatalf("op 4: %v, want its own error", errs[i])
			}
			if r.present("k4") {
				t.Fatal("the refused op was written")
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("op %d: %v", i, errs[i])
		}
		if !r.present(fmt.Sprint("k", i)) {
			t.Fatalf("op %d not written", i)
		}
	}
	// One batch for the ten (run again one op at a time once op 4
	// failed it).
	if got := r.b.gather.batches.Load() - batchesBefore; got != 1 {
		t.Fatalf("%d batches after the held ones, want one", got)
	}
	if r.b.gather.ops.Load() != n+gatherLoops {
		t.Fatalf("ops %d", r.b.gather.ops.Load())
	}
}

// Two writes of one record never share a transaction, and a write whose
// context ended while it waited is not made.
func TestGatherSeparatesWritesOfOneRecord(t *testing.T) {
	r := newGatherRig(t)
	var mu sync.Mutex
	seen := map[string][]*badger.Txn{}
	op := func(key, name string) func(*badger.Txn) error {
		return func(txn *badger.Txn) error {
			mu.Lock()
			seen[name] = append(seen[name], txn)
			mu.Unlock()
			return txn.Set([]byte(key), []byte(name))
		}
	}
	var errs [4]error
	r.submit("rec", op("rec", "first"), context.Background(), &errs[0])
	r.queued(1)
	r.submit("rec", op("rec", "second"), context.Background(), &errs[1])
	r.queued(2)
	r.submit("other", op("other", "other"), context.Background(), &errs[2])
	r.queued(3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.submit("gone", op("gone", "gone"), ctx, &errs[3])
	r.queued(4)
	r.release()
	for i, err := range errs[:3] {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if !errors.Is(errs[3], context.Canceled) {
		t.Fatalf("cancelled op: %v", errs[3])
	}
	if len(seen["gone"]) != 0 || r.present("gone") {
		t.Fatal("the cancelled op ran")
	}
	if len(seen["first"]) != 1 || len(seen["second"]) != 1 || len(seen["other"]) != 1 {
		t.Fatalf("runs: %v", seen)
	}
	if seen["first"][0] == seen["second"][0] {
		t.Fatal("two writes of one record shared a transaction")
	}
	if seen["first"][0] != seen["other"][0] {
		t.Fatal("writes of different records did not share a transaction")
	}
}

// A batch stops at its bounds, and what is left keeps its order.
func TestGatherTakeBounds(t *testing.T) {
	g := &txnGatherer{}
	add := func(key string, size int) {
		g.pending = append(g.pending, &gatherOp{key: key, size: size})
	}
	for i := range gatherMaxOps + 3 {
		add(fmt.Sprint("k", i), 1)
	}
	if got := len(g.take()); got != gatherMaxOps {
		t.Fatalf("batch of %d, want %d", got, gatherMaxOps)
	}
	if len(g.pending) != 3 || g.pending[0].key != fmt.Sprint("k", gatherMaxOps) {
		t.Fatalf("left %d, first %q", len(g.pending), g.pending[0].key)
	}
	g.pending = nil
	add("big1", gatherMaxBytes/2+1)
	add("big2", gatherMaxBytes/2+1)
	add("small", 1)
	if b := g.take(); len(b) != 1 || b[0].key != "big1" {
		t.Fatalf("batch %v over the byte bound", b)
	}
	// A lone op over the bound still goes.
	g.pending = nil
	add("huge", 2*gatherMaxBytes)
	if b := g.take(); len(b) != 1 {
		t.Fatal("an op over the byte bound never ran")
	}
}
