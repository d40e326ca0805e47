package badger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// recordOverhead is about what a record's state, index entries and dedup
// entry add to its event and body on disk, for the free-space checks.
const recordOverhead = 1 << 10

// defaultBodyGrace keeps the body sweep away from bodies whose records may
// still be being written (a batch too large for one transaction).
const defaultBodyGrace = time.Hour

// maxConflictRetries bounds the retries of a transaction that keeps
// conflicting. Every conflict means another transaction committed, so
// progress is being made; running out means heavy contention on few keys.
const maxConflictRetries = 64

// Store is the embedded store.Store, on Badger. One *Store may be shared by
// any number of goroutines and by several Caddy configurations at once
// (during a reload); a second Open of the same directory fails on Badger's
// directory lock.
//
// Durability: Badger runs with SyncWrites off and durable writes use a group
// commit (see groupSyncer): a write is acknowledged once a sync that began
// after its commit has finished. The sync fsyncs Badger's log files itself
// rather than calling Badger's Sync (see logSyncer for why).
//
// Raw bodies: a single-event request keeps its body (up to 16 KB) inside the
// record, so it goes when the record goes. A batch, or a larger body, is
// stored once under its own key with the list of records that share it; a
// sweep on the GC schedule deletes a body once none of those records refers
// to it any more (expired, purged or overwritten).
//
// Reservations of sync deliveries and delivery leases live in memory (see
// reservations and leaseTable): only this process can open the directory.
//
// Keys: see keys.go. Records are JSON behind a small binary header, with
// their status also in Badger's per-entry user-meta byte so that dedup checks
// need not decode the value.
type Store struct {
	db     *badger.DB
	dir    string
	opts   Options
	log    *zap.Logger
	cache  *dedupCache
	leases *leaseTable
	resv   *reservations
	due    *dueMarks
	gsync  *groupSyncer
	logs   *logSyncer // what gsync runs
	gather *txnGatherer
	space  *spaceGuard // nil: disk space not watched
	hand   *handover

	bodyGrace time.Duration
	gcRuns    atomic.Uint64

	// writeGate is held shared by every write transaction (update) and
	// exclusively by reclaim while it has Badger flush its memtables,
	// which fails the commits it overlaps instead of making them wait.
	writeGate sync.RWMutex
	// commits counts the write transactions committed, for the GC loop
	// to tell an idle store.
	commits atomic.Uint64
	// reclaimDue is set when entries were deleted (sweeps, Purge) since
	// the last reclaim; reclaims counts reclaims run.
	reclaimDue atomic.Bool
	reclaims   atomic.Uint64

	// closeMu is held shared by every operation and exclusively by Close,
	// so Close waits for in-flight operations (and their syncs) and no
	// operation starts on a closed database.
	closeMu sync.RWMutex
	closed  bool

	stop      chan struct{}
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the Badger store in dir. A directory whose
// table files its MANIFEST does not account for is refused with ErrDamaged
// and left as it is (see checkDirectory); one written in another format,
// with store.ErrUnsupportedFormat (see checkFormat).
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("opening badger store: empty directory")
	}
	opts = opts.withDefaults()
	var compression options.CompressionType
	switch opts.Compression {
	case "snappy":
		compression = options.Snappy
	case "zstd":
		compression = options.ZSTD
	case "none":
		compression = options.None
	default:
		return nil, fmt.Errorf("opening badger store in %q: unknown compression %q (want snappy, zstd or none)", dir, opts.Compression)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening badger store in %q: %w", dir, err)
	}
	if err := checkDirectory(dir, opts.Logger); err != nil {
		return nil, err
	}
	space := newSpaceGuard(dir, opts.MinFreeSpace, opts.SpaceReserve, opts.Logger)
	space.releaseIfLow()
	bo := badger.DefaultOptions(dir).
		WithLogger(zapBadgerLogger{opts.Logger.Named("badger")}).
		WithSyncWrites(opts.SyncWrites).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		// Compaction builds each output table in memory, up to 13 at a
		// time per compactor, and Badger's allocator pool keeps up to 8
		// of those buffers for reuse. With the default multiplier of 2,
		// deep levels get 16-64 MB tables and the pool alone held over
		// 500 MB with a million records; small tables of one size keep
		// it small at the price of more (cheap) table files.
		WithBaseTableSize(opts.BaseTableSize).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithValueThreshold(opts.ValueThreshold).
		WithBlockSize(opts.BlockSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(opts.NumCompactors).
		WithMetricsEnabled(false)
	bo.TableSizeMultiplier = 1
	bo.Compression = compression
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("opening badger store in %q: %w", dir, err)
	}
	if err := checkFormat(db, dir); err != nil {
		_ = db.Close()
		return nil, err
	}
	b := &Store{
		db:        db,
		dir:       dir,
		opts:      opts,
		log:       opts.Logger,
		cache:     newDedupCache(opts.CacheSize),
		leases:    newLeaseTable(),
		resv:      newReservations(),
		due:       newDueMarks(),
		bodyGrace: defaultBodyGrace,
		stop:      make(chan struct{}),
		space:     space,
		hand:      newHandover(),
	}
	b.logs = newLogSyncer(dir)
	b.gather = &txnGatherer{b: b}
	b.gsync = &groupSyncer{sync: b.logs.sync, committing: b.gather.committing.Load, nudge: make(chan struct{}, 1)}
	if space != nil {
		space.check()
		space.allocateMemtables()
		b.bg.Add(1)
		go b.spaceLoop()
	}
	if opts.GCInterval > 0 {
		b.bg.Add(1)
		go b.gcLoop(opts.GCInterval)
	}
	return b, nil
}

// Stats returns the group-commit counters since Open.
func (b *Store) Stats() store.Stats {
	return store.Stats{Syncs: b.gsync.syncs.Load(), Waits: b.gsync.waits.Load(), ValueLogGCRuns: b.gcRuns.Load(), IdleReclaims: b.reclaims.Load(),
		SyncBatches: b.gsync.batches.Counts(), WriteBatches: b.gather.batches.Load(), BatchedWrites: b.gather.ops.Load(),
		LowOnSpace: b.space.lowOnSpace()}
}

// Close stops the background work, waits for in-flight operations and closes
// the database. It is safe to call more than once; later calls return the
// first call's result.
func (b *Store) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.bg.Wait()
		b.closeMu.Lock()
		b.closed = true
		b.closeMu.Unlock()
		b.gather.drain()
		b.gsync.drain()
		b.logs.close()
		if err := b.db.Close(); err != nil {
			b.closeErr = fmt.Errorf("closing badger store in %q: %w", b.dir, err)
		}
	})
	return b.closeErr
}

func (b *Store) enter() (func(), error) {
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return nil, store.ErrClosed
	}
	return b.closeMu.RUnlock, nil
}

// durable waits until everything committed so far is on disk.
func (b *Store) durable() error {
	if b.opts.SyncWrites {
		return nil // Badger synced the commit itself
	}
	return b.gsync.wait()
}

// fnError carries an error returned by a caller's function through the retry
// loop untouched.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// update runs fn in a read-write transaction and commits, retrying from a
// fresh snapshot when Badger detects a conflict with a concurrent commit or
// fn could not read a value that value-log GC moved (errValueMoved). fn must
// reset any state it accumulates, since it may run several times.
func (b *Store) update(ctx context.Context, fn func(*badger.Txn) error) error {
	moved := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.writeGate.RLock()
		txn := b.db.NewTransaction(true)
		err := fn(txn)
		if err == nil {
			err = txn.Commit()
		}
		txn.Discard()
		b.writeGate.RUnlock()
		if err == nil {
			b.commits.Add(1)
		}
		if fe, ok := err.(fnError); ok {
			err = fe.err
			if !errors.Is(err, errValueMoved) {
				return err
			}
		}
		if errors.Is(err, errValueMoved) {
			// Nothing was written: read again where GC put the value.
			if moved++; moved > maxValueMovedRetries {
				return fmt.Errorf("value still unreadable after %d reads: %w", moved, err)
			}
			continue
		}
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if attempt >= maxConflictRetries {
			return fmt.Errorf("transaction still conflicting after %d retries: %w", attempt, err)
		}
		if attempt >= 2 {
			// Spread out writers that keep colliding on the same keys.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt-2, 4))))
		}
	}
}
