package badger

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// txnGatherer runs concurrent small writes in shared Badger transactions.
// Each Badger transaction pays for a read timestamp, a conflict check against
// every transaction committed since it began, a hand-off to Badger's single
// writer goroutine and a wake-up when it is done. Gathering the writes that
// arrive while a transaction is being built or committed pays those once per
// batch, as the group syncer pays one fsync for every write it covers.
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
	b *Store

	mu      sync.Mutex
	pending []*gatherOp
	loops   int
	wg      sync.WaitGroup

	batches, ops atomic.Uint64
	// committing counts the durable ops handed to write and not yet
	// joined to a sync (see groupSyncer.linger).
	committing atomic.Int64
}

// gatherOp is one write handed to the gatherer.
type gatherOp struct {
	ctx context.Context
	key string // the record written
	// fn writes the op in txn; like b.update's, it may run more than once
	// and must reset what it accumulates.
	fn func(txn *badger.Txn) error
	// gated ops are inserts: their transaction holds the reservation
	// gate shared (see reservations), and committed runs under it once the
	// transaction has committed.
	gated     bool
	committed func()
	size      int
	// durable ops join a group sync in the batch that commits them, all
	// at once, before their writers are woken; synced is that sync, which
	// write waits for.
	durable bool
	synced  *syncBatch
	done    chan error
}

const (
	// gatherLoops bounds the batches built or committed at once.
	gatherLoops = 2
	// gatherMaxOps and gatherMaxBytes bound a batch, well inside Badger's
	// transaction limits for the default memtable.
	gatherMaxOps   = 256
	gatherMaxBytes = 1 << 20
)

// write runs op.fn, which writes the record op.key, in a transaction shared
// with concurrent writes and returns once it has committed (and, for a
// durable op, been synced) or failed. It must be called inside b.enter.
func (g *txnGatherer) write(op *gatherOp) error {
	op.done = make(chan error, 1)
	op.durable = op.durable && !g.b.opts.SyncWrites // Badger syncs each commit itself
	if op.durable {
		g.committing.Add(1)
	}
	g.mu.Lock()
	g.pending = append(g.pending, op)
	if g.loops < gatherLoops {
		g.loops++
		g.wg.Add(1)
		go g.loop()
	}
	g.mu.Unlock()
	if err := <-op.done; err != nil || op.synced == nil {
		return err
	}
	return op.synced.wait()
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
			g.finish([]*gatherOp{op}, err)
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	g.batches.Add(1)
	g.ops.Add(uint64(len(live)))
	if slices.ContainsFunc(live, func(op *gatherOp) bool { return op.gated }) {
		// Held for the batch: a reservation must not appear between an
		// insert's check and its commit.
		unlock := g.b.resv.lock(false)
		defer unlock()
	}
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
			g.finish(live, nil)
			return
		}
	}
	for _, op := range live {
		g.finish([]*gatherOp{op}, g.b.update(op.ctx, op.fn))
	}
}

// finish ends ops that committed together (err nil) or failed: the
// committed ones run their hooks, the durable ones join one group sync, and
// then every writer is woken.
func (g *txnGatherer) finish(ops []*gatherOp, err error) {
	var durable uint64
	for _, op := range ops {
		if op.durable {
			durable++
		}
	}
	if err == nil {
		for _, op := range ops {
			if op.committed != nil {
				op.committed()
			}
		}
		if durable > 0 {
			b := g.b.gsync.join(durable)
			for _, op := range ops {
				if op.durable {
					op.synced = b
				}
			}
		}
	}
	if durable > 0 && g.committing.Add(-int64(durable)) == 0 {
		g.b.gsync.wake()
	}
	for _, op := range ops {
		op.done <- err
	}
}

// drain waits until every loop has exited. Callers must make sure no new
// write arrives (Close holds the store's write lock).
func (g *txnGatherer) drain() { g.wg.Wait() }
