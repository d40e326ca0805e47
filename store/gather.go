package store

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// txnGatherer runs concurrent small writes in shared Badger transactions.
// Each Badger transaction pays for a read timestamp, a conflict check against
// every transaction committed since it began and a hand-off to Badger's
// single writer goroutine; under load those costs, not the disk, bound the
// writes a second (the group syncer already shares the fsync). Gathering the
// writes that arrive while a transaction is being built or committed pays
// them once per batch.
//
// A lone write is never delayed: a loop starts as soon as a write arrives and
// takes whatever is waiting, without waiting for more. Up to gatherLoops
// batches are built at once, so building one (reads, encoding) overlaps the
// commit of another.
//
// Every write of a batch shares its fate: on a conflict the whole batch runs
// again from a fresh snapshot, and if the batch fails for any other reason
// (an op's own error, a transaction too big, a failing disk) each op runs
// again in a transaction of its own, so that an error reaches only the ops it
// belongs to.
type txnGatherer struct {
	b *Badger

	mu      sync.Mutex
	pending []*gatherOp
	loops   int
	wg      sync.WaitGroup

	batches, ops atomic.Uint64
}

// gatherOp is one write handed to the gatherer.
type gatherOp struct {
	ctx context.Context
	key string // the record written
	// fn writes the op in txn; like b.update's, it may run more than once
	// and must reset what it accumulates.
	fn func(txn *badger.Txn) error
	// committed runs once the op's transaction has committed, under the
	// reservation gate held shared.
	committed func()
	size      int
	done      chan error
}

const (
	// gatherLoops bounds the batches built or committed at once.
	gatherLoops = 2
	// gatherMaxOps and gatherMaxBytes bound a batch, well inside Badger's
	// transaction limits for the default memtable.
	gatherMaxOps   = 256
	gatherMaxBytes = 1 << 20
)

// write runs fn, which writes the record key, in a transaction shared with concurrent writes and returns
// once it has committed (not synced) or failed. It must be called inside
// b.enter.
func (g *txnGatherer) write(ctx context.Context, key string, size int, fn func(*badger.Txn) error, committed func()) error {
	op := &gatherOp{ctx: ctx, key: key, fn: fn, committed: committed, size: size, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, op)
	if g.loops < gatherLoops {
		g.loops++
		g.wg.Add(1)
		go g.loop()
	}
	g.mu.Unlock()
	return <-op.done
}

// loop runs batches while writes wait, then exits, so an idle store has no
// goroutine spinning.
func (g *txnGatherer) loop() {
	defer g.wg.Done()
	for {
		g.mu.Lock()
		batch := g.take()
		if len(batch) == 0 {
			g.loops--
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.run(batch)
	}
}

// take removes the next batch from pending; the caller holds mu. Two ops on
// one record never share a batch: a transition overlays the in-memory lease
// it read before the transaction, which only a conflict between separate
// transactions makes it read again.
func (g *txnGatherer) take() []*gatherOp {
	var batch []*gatherOp
	var keys map[string]bool
	size := 0
	rest := g.pending[:0]
	for i, op := range g.pending {
		full := len(batch) == gatherMaxOps || (len(batch) > 0 && size+op.size > gatherMaxBytes)
		if full {
			rest = append(rest, g.pending[i:]...)
			break
		}
		if len(batch) > 0 {
			if keys == nil {
				keys = map[string]bool{batch[0].key: true}
			}
			if keys[op.key] {
				rest = append(rest, op)
				continue
			}
			keys[op.key] = true
		}
		batch = append(batch, op)
		size += op.size
	}
	clear(g.pending[len(rest):])
	g.pending = rest
	return batch
}

// run commits batch, or falls back to one transaction per op.
func (g *txnGatherer) run(batch []*gatherOp) {
	live := batch[:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	g.batches.Add(1)
	g.ops.Add(uint64(len(live)))
	unlock := g.b.resv.lock(false)
	defer unlock()
	if len(live) > 1 {
		err := g.b.update(context.Background(), func(txn *badger.Txn) error {
			for _, op := range live {
				if err := op.fn(txn); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			for _, op := range live {
				if op.committed != nil {
					op.committed()
				}
				op.done <- nil
			}
			return
		}
	}
	for _, op := range live {
		err := g.b.update(op.ctx, op.fn)
		if err == nil && op.committed != nil {
			op.committed()
		}
		op.done <- err
	}
}

// drain waits until every loop has exited. Callers must make sure no new
// write arrives (Close holds the store's write lock).
func (g *txnGatherer) drain() { g.wg.Wait() }
