package store

import (
	"errors"
	"sync/atomic"
)

// ErrClosed is returned by every method of a closed store, whatever its
// engine.
var ErrClosed = errors.New("store is closed")

// Stats are counters of an engine's group commit, for metrics: Waits/Syncs
// is how many durable writes one commit (one fsync) covers on average.
// Fields an engine has no counterpart for stay zero.
type Stats struct {
	// Syncs is the number of group syncs (or commits) run.
	Syncs uint64
	// Waits is the number of durable writes that waited for one.
	Waits uint64
	// ValueLogGCRuns is the number of value-log collections, scheduled or
	// early (Badger).
	ValueLogGCRuns uint64
	// IdleReclaims is the number of times the GC schedule found the store
	// idle after deletions and flushed and compacted it so that value-log
	// GC could collect them (Badger).
	IdleReclaims uint64
	// SyncBatches counts group syncs by how many durable writes each
	// covered: SyncBatches[i] those with at most SyncBatchBounds[i] (and
	// more than the bound before), the last one those over every bound.
	SyncBatches []uint64
	// WriteBatches is the number of shared write transactions and
	// BatchedWrites the writes they carried: their ratio is how many
	// writes one transaction gathered (Badger).
	WriteBatches, BatchedWrites uint64
	// LowOnSpace is set while new events are refused for lack of disk
	// space (ErrNoSpace).
	LowOnSpace bool
}

// SyncBatchBounds are the upper bounds of the batch-size buckets of
// Stats.SyncBatches: how many durable writes one group sync covered.
var SyncBatchBounds = [...]uint64{1, 2, 4, 8, 16, 32, 64, 128, 256}

// BatchHistogram counts group syncs by the number of writes each covered,
// in the buckets of SyncBatchBounds, the last one for syncs over every
// bound. The zero value is ready; it is safe for concurrent use.
type BatchHistogram struct {
	counts [len(SyncBatchBounds) + 1]atomic.Uint64
}

// Observe counts a sync that covered n writes.
func (h *BatchHistogram) Observe(n uint64) {
	i := 0
	for i < len(SyncBatchBounds) && n > SyncBatchBounds[i] {
		i++
	}
	h.counts[i].Add(1)
}

// Counts returns the syncs per bucket, for Stats.SyncBatches.
func (h *BatchHistogram) Counts() []uint64 {
	out := make([]uint64, len(h.counts))
	for i := range h.counts {
		out[i] = h.counts[i].Load()
	}
	return out
}
