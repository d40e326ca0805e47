package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// gcLoop garbage-collects the value log and sweeps orphaned batch bodies on
// a schedule until Close. Badger never reclaims value-log space on its own.
//
// Under sustained load the value log can grow by gigabytes between two
// scheduled runs (every status update of a record stored there appends the
// whole record again), so the loop also looks at the number of value-log
// files every gcCheckEvery and collects early once it has grown by
// gcGrowthFiles since the last collection. At each check it also reclaims
// (see reclaim) if nothing was written since the previous check and
// something was deleted since the last reclaim.
func (b *Store) gcLoop(every time.Duration) {
	defer b.bg.Done()
	check := min(every, gcCheckEvery)
	t := time.NewTicker(check)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	last := time.Now()
	baseline := countValueLogFiles(b.dir)
	commits := b.commits.Load()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		// Idle: nothing but this loop wrote since the previous tick.
		idle := b.commits.Load() == commits
		scheduled := time.Since(last) >= every
		files := countValueLogFiles(b.dir)
		if scheduled || files >= baseline+gcGrowthFiles {
			b.runValueLogGC(ctx)
			b.leases.sweep(b.opts.Now())
			b.resv.sweep(b.opts.Now())
			baseline = countValueLogFiles(b.dir)
		}
		if scheduled {
			last = time.Now()
			if n, err := b.sweepBodies(ctx, b.bodyGrace); err != nil && ctx.Err() == nil {
				b.log.Warn("sweeping orphaned batch bodies", zap.String("dir", b.dir), zap.Error(err))
			} else if n > 0 {
				b.log.Debug("swept orphaned batch bodies", zap.Int("count", n))
			}
			if n, err := b.sweepPayloads(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("sweeping orphaned payloads", zap.String("dir", b.dir), zap.Error(err))
			} else if n > 0 {
				b.log.Debug("swept orphaned payloads", zap.Int("count", n))
			}
		}
		if idle && b.reclaimDue.Load() && ctx.Err() == nil {
			if err := b.reclaim(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("reclaiming the space of deleted events on an idle store", zap.String("dir", b.dir), zap.Error(err))
			}
			baseline = countValueLogFiles(b.dir)
		}
		commits = b.commits.Load()
	}
}

// reclaimKey is the one key reclaim writes, under a namespace of its own
// (see keys.go) that sorts before every other, and that DropPrefix drops
// before it reaches a table.
var reclaimKey = []byte("\x00reclaim")

// reclaim lets value-log GC collect the values of deleted and expired
// entries on a store that nothing writes to. Value-log GC rewrites a file
// only once compactions have counted enough of its values as garbage, and a
// compaction only counts a value when it meets the deletion (a tombstone the
// payload sweep wrote, an expiry) in the same table: on a store that goes on
// writing this happens as its memtables fill and are flushed, but an idle
// store keeps its deletions in its memtable, and the space of expired events
// stays taken until writes come back. reclaim does what those writes would:
//
//  1. It flushes the memtables, through DropPrefix of a key of its own
//     (Badger offers no other way). DropPrefix fails the commits it
//     overlaps, so reclaim holds writeGate while it runs: writes wait, and
//     so do reads, which DropPrefix keeps out of the memtables meanwhile;
//     on an idle store that is the flush of a memtable that is mostly
//     empty, and the compaction of level 0 that follows.
//  2. It compacts every level into the last one (Flatten), where a
//     deletion meets the value it deletes and both are dropped. Writes go
//     on meanwhile. While the tree under level 0 is smaller than Badger's
//     base level size (10 MB, some tens of thousands of events) it has a
//     single level there, and this is the compaction of level 0 that
//     writes would have caused; a larger tree has its upper levels
//     rewritten into the last one, at most the whole tree (keys and small
//     records, not the value log: about 125 MB for a million retained
//     events, see Options.BaseTableSize).
//  3. It runs value-log GC, which now finds the files to rewrite, except
//     the one Badger is writing to (ValueLogFileSize, 64 MiB by default),
//     collected once writes have moved past it or after a restart.
//
// The GC loop runs it when a tick finds that nothing was written since the
// previous one and that entries were deleted since the last reclaim (the
// payload and body sweeps of the GC schedule, or a Purge): at most once per
// deletion, so an idle store with nothing to reclaim does no work.
func (b *Store) reclaim(ctx context.Context) error {
	if b.space.lowOnSpace() {
		return nil // a compaction writes before it frees
	}
	b.reclaimDue.Store(false)
	b.reclaims.Add(1)
	b.writeGate.Lock()
	err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(reclaimKey, nil) })
	if err == nil {
		err = b.db.DropPrefix(reclaimKey)
	}
	b.writeGate.Unlock()
	if err != nil {
		return fmt.Errorf("flushing the memtables: %w", err)
	}
	if err := b.db.Flatten(1); err != nil {
		return fmt.Errorf("compacting: %w", err)
	}
	b.runValueLogGC(ctx)
	return nil
}

// gcCheckEvery is how often the loop counts value-log files; a variable so
// that tests need not wait for it.
var gcCheckEvery = 15 * time.Second

const gcGrowthFiles = 4

// countValueLogFiles counts the value-log files in dir. File sizes say
// little: Badger preallocates the active file.
func countValueLogFiles(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".vlog" {
			n++
		}
	}
	return n
}

// runValueLogGC rewrites value-log files while Badger finds one worth it.
func (b *Store) runValueLogGC(ctx context.Context) {
	if b.space.lowOnSpace() {
		return // a rewrite needs the space the disk does not have
	}
	b.gcRuns.Add(1)
	for range 64 {
		if ctx.Err() != nil {
			return
		}
		err := b.db.RunValueLogGC(b.opts.GCDiscardRatio)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			b.log.Warn("value log garbage collection", zap.String("dir", b.dir), zap.Error(err))
		}
		return
	}
}

// SweepBodies deletes shared batch bodies that no record refers to any more
// (all of their records expired, were purged, or were overwritten) and
// returns how many. It runs on the GC schedule; it is exported for tools and
// tests. Bodies younger than an hour are left alone, since the records of a
// batch too large for one transaction are written after their body.
func (b *Store) SweepBodies(ctx context.Context) (int, error) {
	unlock, err := b.enter()
	if err != nil {
		return 0, err
	}
	defer unlock()
	return b.sweepBodies(ctx, b.bodyGrace)
}

func (b *Store) sweepBodies(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := time.Now().Add(-grace)
	var orphans [][]byte
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixBody)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			id := item.Key()[len(prefixBody):]
			live := true
			err := itemValue(item, func(v []byte) error {
				created, keys, _, err := decodeBodyValue(v)
				if err != nil {
					return err
				}
				if created.After(cutoff) {
					return nil
				}
				live, err = bodyReferenced(txn, id, keys)
				return err
			})
			if err != nil {
				return fmt.Errorf("body %x: %w", id, err)
			}
			if !live {
				orphans = append(orphans, item.KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweeping batch bodies: %w", err)
	}
	// Nothing can start referring to an orphan again (new records always
	// get a new body), so plain deletes are safe.
	for n := 0; n < len(orphans); n += purgeChunk {
		chunk := orphans[n:min(len(orphans), n+purgeChunk)]
		err := b.update(ctx, func(txn *badger.Txn) error {
			for _, k := range chunk {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("sweeping batch bodies: %w", err)
		}
		b.reclaimDue.Store(true)
	}
	return len(orphans), nil
}

// bodyReferenced reports whether any of keys still holds a record pointing
// at body id. A key may have been reused by a newer record with its own body.
func bodyReferenced(txn *badger.Txn, id []byte, keys [][]byte) (bool, error) {
	for _, k := range keys {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		ref := false
		if err := itemValue(item, func(v []byte) error {
			p, err := splitRecordValue(v)
			ref = err == nil && p.bodyKind == bodyRef && bytes.Equal(p.body, id)
			return err
		}); err != nil {
			return false, err
		}
		if ref {
			return true, nil
		}
	}
	return false, nil
}

// payloadOwned reports whether the record under recKey exists and keeps its
// event in its payload entry.
func payloadOwned(txn *badger.Txn, recKey []byte) (bool, error) {
	item, err := txn.Get(recKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return itemOwnsPayload(item)
}

// itemOwnsPayload reports whether the record in item keeps its event in a
// payload entry.
func itemOwnsPayload(item *badger.Item) (bool, error) {
	owned := false
	err := itemValue(item, func(v []byte) error {
		p, err := splitRecordValue(v)
		owned = err == nil && p.bodyKind == bodyPayload
		return err
	})
	return owned, err
}

// SweepPayloads deletes the payload entries whose record is gone (expired
// after its retention: Badger expires entries one by one, and the payload
// has no expiry of its own, since the record's starts only once it is
// delivered) and returns how many. It runs on the GC schedule; it is
// exported for tools and tests.
func (b *Store) SweepPayloads(ctx context.Context) (int, error) {
	unlock, err := b.enter()
	if err != nil {
		return 0, err
	}
	defer unlock()
	return b.sweepPayloads(ctx)
}

func (b *Store) sweepPayloads(ctx context.Context) (int, error) {
	var orphans [][]byte
	err := b.db.View(func(txn *badger.Txn) error {
		// Payload and record keys share their suffix and sort alike, so
		// one pass over each in step finds the orphans without a point
		// read per payload (ten times slower with a million records).
		pit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixPayload)})
		defer pit.Close()
		rit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixRecord)})
		defer rit.Close()
		rit.Rewind()
		for pit.Rewind(); pit.Valid(); pit.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			suffix := pit.Item().Key()[len(prefixPayload):]
			for rit.Valid() && bytes.Compare(rit.Item().Key()[len(prefixRecord):], suffix) < 0 {
				rit.Next()
			}
			owned := false
			if rit.Valid() && bytes.Equal(rit.Item().Key()[len(prefixRecord):], suffix) {
				var err error
				if owned, err = itemOwnsPayload(rit.Item()); err != nil {
					return err
				}
			}
			if !owned {
				orphans = append(orphans, pit.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweeping payloads: %w", err)
	}
	// A record key can be used again (an event sent anew after its
	// retention), and its new payload then sits under the same key: each
	// deletion re-checks the record in a transaction that conflicts with
	// such an insert.
	n := 0
	for len(orphans) > 0 {
		chunk := orphans[:min(len(orphans), purgeChunk)]
		orphans = orphans[len(chunk):]
		deleted := 0
		err := b.update(ctx, func(txn *badger.Txn) error {
			deleted = 0
			for _, pk := range chunk {
				owned, err := payloadOwned(txn, recordKeyOfPayload(pk))
				if err != nil {
					return err
				}
				if owned {
					continue
				}
				if err := txn.Delete(pk); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("sweeping payloads: %w", err)
		}
		n += deleted
		if deleted > 0 {
			b.reclaimDue.Store(true)
		}
	}
	return n, nil
}
