package badger

import (
	"bytes"
	"context"
	crand "crypto/rand"
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

// Options tune a Badger store. The zero value is a sensible default: every
// field left zero takes the default documented on it. The memory defaults are
// chosen to keep a gateway with a million retained events well under 300 MB
// of RSS; Badger's own defaults (64 MB memtables × 5, 256 MB block cache,
// unbounded index memory) are sized for a database server, not a sidecar.
type Options struct {
	// CacheSize is how many dedup keys the in-memory LRU remembers, so a
	// hot duplicate is answered without reading Badger. Default 65,536
	// (roughly 150 bytes each); negative disables the cache.
	CacheSize int

	// MemTableSize is the size of each Badger memtable. Default 8 MiB:
	// flushing a memtable builds its whole table in a heap buffer that
	// Badger then pools for reuse, so this drives the resident heap
	// (about 300 MB of anonymous memory at 16 MiB vs 180 at 8 MiB while
	// inserting a million events).
	// One transaction can hold at most 15% of it, so a batch too large for
	// one transaction is inserted in several (each record still atomically).
	MemTableSize int64
	// NumMemtables is how many memtables may be held in memory, the
	// active one included, before writes stall on flushing. Default 2.
	NumMemtables int
	// BlockCacheSize caches decompressed SST blocks. Default 16 MiB.
	BlockCacheSize int64
	// IndexCacheSize caps the memory used by SST indexes and bloom
	// filters. Badger's default (0) keeps them all in memory, which grows
	// with the data set. Default 16 MiB.
	IndexCacheSize int64
	// ValueThreshold is the value size from which values go to the value
	// log instead of the LSM tree. Default 4 KiB: the record of a small
	// event (about 2.5 KB with its body and canonical event) stays in the
	// tree, compressed; a larger one is appended to the value log instead
	// of being rewritten by every compaction, which doubled the throughput
	// with 12 KB bodies and made their delivery twenty times faster (see
	// docs/BENCHMARKS.md). The value log is not compressed, and each status
	// update appends the whole record again; value-log GC reclaims that
	// (it runs early when the log grows fast, see GCInterval).
	ValueThreshold int64
	// BlockSize is the size of the blocks SST files are compressed and
	// read in. Default 8 KiB (Badger's is 4 KiB): the payload of a small
	// event is about 2 KB, so 4 KiB blocks held one or two entries each and
	// compaction spent much of its time building a compression table per
	// block. Larger blocks compress better, so fewer SST pages are mapped
	// at rest, but they raise the heap while ingesting flat out: with a
	// million events, 16 KiB blocks peaked at 943 MiB of RSS against 663
	// for 8 KiB, for 7% more async throughput (see docs/BENCHMARKS.md).
	BlockSize int
	// ValueLogFileSize is the size of one value-log file; the log is
	// garbage-collected a file at a time. Default 64 MiB.
	ValueLogFileSize int64
	// BaseTableSize is the size of every SST file (all levels use one
	// size). Default 512 KiB: compaction builds its output tables in
	// memory, several at once, so the table size sets the heap of a
	// store ingesting flat out. With a million events, 512 KiB tables
	// peaked at 361 MiB of RSS against 653 MiB for 2 MiB ones, and
	// inserted faster (less time collecting garbage); 256 KiB lowered
	// nothing further. The price is more table files, each an open
	// descriptor: about 250 per million retained 1 KB events.
	// (docs/BENCHMARKS.md)
	BaseTableSize int64
	// Compression of SST blocks: "snappy", "zstd" or "none". Default
	// "zstd": JSON records compress about twice as well as with Snappy,
	// and the SST files Badger maps into memory are correspondingly
	// smaller. "none" reads blocks straight from the mapped files instead
	// of decompressing them into heap buffers, which lowers anonymous
	// memory, at three to four times the disk space and mapped pages.
	Compression string
	// NumCompactors is the number of compaction goroutines (at least 2).
	// Default 2.
	NumCompactors int

	// GCInterval is how often the value log is garbage-collected and the
	// store sweeps what nothing refers to any more: orphaned batch bodies,
	// the payloads of expired records and long-expired leases. Default 10
	// minutes; negative disables all of it, so that disk use then grows
	// without bound (for tests and benchmarks only). The value log is also
	// collected early once it has grown by four files since the last
	// collection, and a store found idle after deletions is flushed and
	// compacted so that the collection finds their space (see reclaim).
	GCInterval time.Duration
	// GCDiscardRatio is the share of stale data a value-log file needs
	// before GC rewrites it. Default 0.5.
	GCDiscardRatio float64

	// ReservationExpiry is how long a StatusReserved record blocks its key
	// if the process dies before releasing or delivering it. It must
	// outlast a synchronous delivery. Default 2 minutes.
	ReservationExpiry time.Duration

	// MinFreeSpace is the free disk space below which new events are
	// refused with ErrNoSpace (state changes of stored events go on), so
	// that Badger never runs out of disk mid-write, which kills the
	// process (see space.go). Default 256 MiB: a memtable flush, a
	// compaction and a value-log rewrite with room to spare. Negative
	// disables the check.
	MinFreeSpace int64
	// SpaceReserve is the size of a file the store allocates in its
	// directory while space is plentiful and deletes when the disk is
	// nearly full, or before opening on a full disk, to give Badger room.
	// Default 64 MiB; negative: no reserve.
	SpaceReserve int64

	// SyncWrites makes Badger sync every commit itself instead of the
	// store's group commit. It is slower under concurrency and exists to
	// compare the two.
	SyncWrites bool

	// Logger receives Badger's warnings and errors and the store's own
	// background failures. Default: discard.
	Logger *zap.Logger
}

func (o Options) withDefaults() Options {
	if o.CacheSize == 0 {
		o.CacheSize = 1 << 16
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = 8 << 20
	}
	if o.NumMemtables <= 0 {
		o.NumMemtables = 2
	}
	if o.BlockCacheSize <= 0 {
		o.BlockCacheSize = 16 << 20
	}
	if o.IndexCacheSize <= 0 {
		o.IndexCacheSize = 16 << 20
	}
	if o.ValueThreshold <= 0 {
		o.ValueThreshold = 4 << 10
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 8 << 10
	}
	if o.ValueLogFileSize <= 0 {
		o.ValueLogFileSize = 64 << 20
	}
	if o.BaseTableSize <= 0 {
		o.BaseTableSize = 512 << 10
	}
	if o.Compression == "" {
		o.Compression = "zstd"
	}
	if o.NumCompactors < 2 {
		o.NumCompactors = 2
	}
	if o.GCInterval == 0 {
		o.GCInterval = 10 * time.Minute
	}
	if o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1 {
		o.GCDiscardRatio = 0.5
	}
	if o.ReservationExpiry <= 0 {
		o.ReservationExpiry = 2 * time.Minute
	}
	if o.MinFreeSpace == 0 {
		o.MinFreeSpace = 256 << 20
	}
	if o.SpaceReserve == 0 {
		o.SpaceReserve = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

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
// and left as it is (see checkDirectory).
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

// spaceLoop watches the disk until Close, so that the store notices space
// coming back without waiting for a write, and allocates the memtable logs
// Badger creates.
func (b *Store) spaceLoop() {
	defer b.bg.Done()
	t := time.NewTicker(spaceLoopEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.space.check()
			b.space.allocateMemtables()
		}
	}
}

// spaceLoopEvery is how often the disk is watched without writes.
const spaceLoopEvery = 500 * time.Millisecond

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
// fresh snapshot when Badger detects a conflict with a concurrent commit. fn
// must reset any state it accumulates, since it may run several times.
func (b *Store) update(ctx context.Context, fn func(*badger.Txn) error) error {
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
			return fe.err
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

// Status bytes are also stored as the entry's Badger user-meta, so dedup and
// cache read-backs learn a record's status without reading its value.
var statusMeta = map[store.Status]byte{
	store.StatusReserved:  1,
	store.StatusPending:   2,
	store.StatusRetrying:  3,
	store.StatusDelivered: 4,
	store.StatusDead:      5,
}

var metaStatus = func() map[byte]store.Status {
	m := make(map[byte]store.Status, len(statusMeta))
	for s, b := range statusMeta {
		m[b] = s
	}
	return m
}()

// expiresAt is the Badger expiry of a record: delivered records go after
// their retention; everything else stays until it is delivered, replayed or
// purged.
func expiresAt(r *store.Record, now time.Time) uint64 {
	if r.Status == store.StatusDelivered && r.Retention > 0 {
		return uint64(now.Add(r.Retention).Unix())
	}
	return 0
}

// writeRecord stores rec under key with its index entries, replacing those
// of old (the previously stored state, or nil).
//
// A record of body kind payload gets its payload entry (rec.Event and body)
// when it is first written (old nil); later states leave it alone.
func (b *Store) writeRecord(txn *badger.Txn, key []byte, old, rec *store.Record, bodyKind byte, body []byte, now time.Time) error {
	if bodyKind == bodyPayload {
		if old == nil {
			if err := txn.Set(payloadKey(key), encodePayloadValue(rec.Event, body)); err != nil {
				return err
			}
		}
		body = nil
	}
	val, err := encodeRecordValue(rec, bodyKind, body)
	if err != nil {
		return err
	}
	exp := expiresAt(rec, now)
	e := badger.NewEntry(key, val).WithMeta(statusMeta[rec.Status])
	e.ExpiresAt = exp
	if err := txn.SetEntry(e); err != nil {
		return err
	}
	tk := timeKey(rec.ReceivedAt, key)
	if old != nil && !old.ReceivedAt.Equal(rec.ReceivedAt) {
		if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
			return err
		}
	}
	te := badger.NewEntry(tk, encodeSummary(rec))
	te.ExpiresAt = exp
	if err := txn.SetEntry(te); err != nil {
		return err
	}
	var oldDue, newDue []byte
	if old != nil && claimable(old.Status) {
		oldDue = dueKey(old.Source, old.ID, dueAt(old))
	}
	if claimable(rec.Status) {
		newDue = dueKey(rec.Source, rec.ID, dueAt(rec))
		b.due.wrote(rec.Source, dueAt(rec))
	}
	if oldDue != nil && string(oldDue) != string(newDue) {
		if err := txn.Delete(oldDue); err != nil {
			return err
		}
	}
	if newDue != nil {
		if err := txn.Set(newDue, nil); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecord removes a stored record, its index entries, its payload and
// its dedup entry (if the entry is still the record's: after the window a
// later record may hold the same key).
func deleteRecord(txn *badger.Txn, key []byte, sr *storedRecord) error {
	old := sr.rec
	if err := txn.Delete(key); err != nil {
		return err
	}
	if old.DedupKey != "" {
		dk := dedupKey(old.Source, old.DedupKey)
		item, err := txn.Get(dk)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if _, id, err := decodeDedupValue(v); err != nil || id == old.ID {
				// An unreadable entry can only block the key.
				if err := txn.Delete(dk); err != nil {
					return err
				}
			}
		}
	}
	if sr.bodyKind == bodyPayload {
		if err := txn.Delete(payloadKey(key)); err != nil {
			return err
		}
	}
	if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
		return err
	}
	if claimable(old.Status) {
		if err := txn.Delete(dueKey(old.Source, old.ID, dueAt(old))); err != nil {
			return err
		}
	}
	return nil
}

// readRecord reads and decodes the record under key in txn, with its event.
func readRecord(txn *badger.Txn, key []byte) (*storedRecord, *badger.Item, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, nil, err
	}
	sr, err := decodeRecordValue(v)
	if err != nil {
		return nil, nil, err
	}
	if sr.bodyKind == bodyPayload {
		err := readPayload(txn, key, func(event, _ []byte) { sr.rec.Event = bytes.Clone(event) })
		if err != nil {
			return nil, nil, err
		}
	}
	return sr, item, nil
}

// readPayload calls fn with the event and raw body in the payload entry of
// the record under key; they are only valid during the call.
func readPayload(txn *badger.Txn, key []byte, fn func(event, body []byte)) error {
	item, err := txn.Get(payloadKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errors.New("payload entry is missing")
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		event, body, err := splitPayloadValue(v)
		if err == nil {
			fn(event, body)
		}
		return err
	})
}

// insertOutcome is what one attempt learned about one record.
type insertOutcome struct {
	inserted bool
	existing store.Status
	// existingID is the record found present: the record's own id, or
	// the holder of its dedup key.
	existingID string
	// Cache facts for a record found present under its own id.
	version, expiresAt uint64
}

// heldBy is the record holding a dedup key.
type heldBy struct {
	id     string
	status store.Status
}

// dedupHolder looks up who holds the dedup key of r at now in Badger. The
// key is held while its window runs; a key whose record is gone (purged,
// expired) is free. Reservations, which live in memory, hold their dedup
// keys there (see reservations).
func dedupHolder(txn *badger.Txn, r *store.Record, now time.Time) (*heldBy, error) {
	item, err := txn.Get(dedupKey(r.Source, r.DedupKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	until, id, err := decodeDedupValue(v)
	if err != nil {
		return nil, err
	}
	ri, err := txn.Get(recordKey(r.Source, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if now.Before(until) {
		return &heldBy{id: id, status: metaStatus[ri.UserMeta()]}, nil
	}
	return nil, nil
}

// writeDedup makes r the holder of its dedup key for its window from now. A
// reservation's entry lives until the reservation expires, so that a live
// reservation is still found when it outlasts the window.
func writeDedup(txn *badger.Txn, r *store.Record, now time.Time) error {
	until := now.Add(r.DedupWindow)
	life := until
	if r.Status == store.StatusReserved && r.ReservedUntil.After(life) {
		life = r.ReservedUntil
	}
	e := badger.NewEntry(dedupKey(r.Source, r.DedupKey), encodeDedupValue(until, r.ID))
	// Badger drops an entry once ExpiresAt <= now in whole seconds.
	e.ExpiresAt = uint64(life.Unix()) + 1
	return txn.SetEntry(e)
}

// Insert implements store.Store. Records are validated first: each needs a source
// without NUL bytes and a non-empty id. Insert fills in defaults on the
// caller's records: Status pending when empty, ReceivedAt now when zero,
// BatchSize the number of records when zero, and ReservedUntil now plus the
// reservation expiry for a StatusReserved record. A stored reservation that
// has expired counts as absent and is overwritten. A record with a DedupKey
// is also a duplicate while another record holds that key (see
// Record.DedupKey). Two records of one Ingest with the same id or the same
// dedup key are stored once; the second reports a duplicate.
//
// A durable Insert that finds duplicates in Badger still waits for a sync,
// because the first copy may belong to a concurrent writer whose sync is not
// done yet: answering "duplicate" for an event that is then lost would drop
// it for good. Once the commit is made, Insert no longer honours ctx.
//
// A batch is worked through in chunks of maxTxnRecords, each in a
// transaction of its own (each record still atomically insert-if-absent),
// so that the keys, the outcomes and Badger's pending writes of only one
// chunk exist at a time.
func (b *Store) Insert(ctx context.Context, in *store.Ingest, durable bool) ([]store.InsertResult, error) {
	now := time.Now()
	if err := store.PrepareInsert(in, now); err != nil {
		return nil, err
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()

	n := len(in.Records)
	size := len(in.RawBody)
	for _, r := range in.Records {
		size += len(r.Event) + recordOverhead
	}
	ins := &inserter{b: b, in: in, now: now, res: make([]store.InsertResult, n), payload: n == 1, durable: durable}
	if n > 1 && len(in.RawBody) > 0 {
		ins.bodyID = make([]byte, bodyIDLen)
		_, _ = crand.Read(ins.bodyID) // never fails (crypto/rand)
	}
	defer ins.endExpectations()
	spaceChecked, bodyWritten := false, false
	chunk := maxTxnRecords
	for lo := 0; lo < n; {
		hi := min(lo+chunk, n)
		c := ins.prepare(lo, hi)
		if len(c.todo) > 0 && !spaceChecked {
			if err := b.space.allow(size, true); err != nil {
				return nil, fmt.Errorf("insert: %w", err)
			}
			spaceChecked = true
		}
		if len(c.todo) > 0 && !bodyWritten && (lo > 0 || hi < n) {
			// More than one transaction: the shared body goes first,
			// naming every record of the batch.
			if err := ins.writeSharedBody(ctx); err != nil {
				return nil, fmt.Errorf("insert: %w", err)
			}
			bodyWritten = true
		}
		err := ins.run(ctx, c, hi == n && lo == 0)
		if errors.Is(err, badger.ErrTxnTooBig) && hi-lo > 1 {
			chunk = max((hi-lo)/2, 1)
			ins.unexpect(c)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
		ins.finish(c, hi == n)
		lo = hi
	}
	if durable && !ins.synced && (ins.wentThrough || ins.needSync) {
		// Whether records were inserted or found, what went through
		// Badger needs a sync either way, unless the gathered write
		// waited for one.
		if err := b.durable(); err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
	}
	ins.publish(durable)
	return ins.res, nil
}

// maxTxnRecords bounds the records of one insert transaction. A loyalty
// batch of tens of thousands of items in one transaction would be refused
// by Badger as too big only after every record was encoded, and would hold
// all of them in memory at once; chunks keep the memory of a batch a small
// multiple of its body.
const maxTxnRecords = 256

// inserter is the state of one Insert across its chunks.
type inserter struct {
	b       *Store
	in      *store.Ingest
	now     time.Time
	res     []store.InsertResult
	payload bool   // a single-event request: its body goes in the payload entry
	bodyID  []byte // a batch's shared body
	durable bool
	synced  bool // the gathered write waited for its sync

	grp         *reservedIngest // the reservations made, if any
	wentThrough bool            // some record was looked up in Badger
	needSync    bool            // a duplicate was answered from a cached, unsynced write

	// expected are the records offered to the handover once synced, at
	// most handoverMax (the handover holds no more per source; the due
	// scan finds the rest).
	expected []int
	// last is the final chunk, whose cache entries are put once synced.
	last *insertChunk
}

// insertChunk is the records [lo, hi) of an Insert.
type insertChunk struct {
	lo, hi int
	keys   [][]byte // by index - lo
	todo   []int    // indexes to look up in Badger
	dupOf  map[int]int
	out    map[int]insertOutcome
	gen    uint64
}

func (c *insertChunk) key(i int) []byte { return c.keys[i-c.lo] }

// prepare computes the chunk's keys and answers what the cache and the
// chunk itself can: cached duplicates and repeats within the chunk. A
// repeat of a record of an earlier chunk is found in Badger (or among the
// reservations) like any duplicate.
func (ins *inserter) prepare(lo, hi int) *insertChunk {
	c := &insertChunk{lo: lo, hi: hi, keys: make([][]byte, hi-lo)}
	var seen map[string]int
	if hi-lo > 1 {
		seen = make(map[string]int, hi-lo)
		c.dupOf = make(map[int]int)
	}
	for i := lo; i < hi; i++ {
		r := ins.in.Records[i]
		k := recordKey(r.Source, r.ID)
		c.keys[i-lo] = k
		if seen != nil {
			if j, ok := seen[string(k)]; ok {
				c.dupOf[i] = j
				continue
			}
			if r.DedupKey != "" {
				dk := string(dedupKey(r.Source, r.DedupKey))
				if j, ok := seen[dk]; ok {
					c.dupOf[i] = j
					continue
				}
				seen[dk] = i
			}
			seen[string(k)] = i
		}
		if st, synced, ok := ins.b.cache.present(string(k), ins.now); ok {
			ins.res[i] = store.InsertResult{Existing: st, ExistingID: r.ID}
			ins.needSync = ins.needSync || !synced
			continue
		}
		c.todo = append(c.todo, i)
	}
	for _, i := range c.todo {
		if len(ins.expected) == handoverMax {
			break
		}
		ins.b.hand.expect(string(c.key(i)))
		ins.expected = append(ins.expected, i)
	}
	return c
}

// unexpect ends the expectations of a chunk that is being split.
func (ins *inserter) unexpect(c *insertChunk) {
	keep := ins.expected[:0]
	for _, i := range ins.expected {
		if i >= c.lo && i < c.hi {
			ins.b.hand.offer(string(c.key(i)), nil)
			continue
		}
		keep = append(keep, i)
	}
	ins.expected = keep
}

// writeSharedBody writes the batch's body entry, naming every record.
func (ins *inserter) writeSharedBody(ctx context.Context) error {
	if ins.bodyID == nil {
		return nil
	}
	writing := false
	for _, r := range ins.in.Records {
		writing = writing || r.Status != store.StatusReserved
	}
	if !writing {
		return nil // reservations write their own when delivered
	}
	keys := make([][]byte, len(ins.in.Records))
	for i, r := range ins.in.Records {
		keys[i] = recordKey(r.Source, r.ID)
	}
	err := ins.b.update(ctx, func(txn *badger.Txn) error {
		return txn.Set(bodyKey(ins.bodyID), encodeBodyValue(ins.now, keys, ins.in.RawBody))
	})
	if err != nil {
		return fmt.Errorf("writing shared body: %w", err)
	}
	return nil
}

// run is the chunk's transaction, retried on conflict, and the reservations
// it made, all under the reservation gate. withBody writes the shared body
// in the same transaction (the batch fits in one).
func (ins *inserter) run(ctx context.Context, c *insertChunk, withBody bool) error {
	if len(c.todo) == 0 {
		return nil
	}
	reserving := false
	for _, i := range c.todo {
		reserving = reserving || ins.in.Records[i].Status == store.StatusReserved
	}
	ch := &reservationChanges{}
	if reserving {
		if ins.grp == nil {
			ins.grp = newReservedIngest(ins.in)
		}
		ch.grp = ins.grp
	}
	c.out = make(map[int]insertOutcome, len(c.todo))
	c.gen = ins.b.cache.generation()
	ins.wentThrough = true
	fn := func(txn *badger.Txn) error {
		clear(c.out)
		ch.reset()
		return ins.b.insertTxn(txn, ins.in, c.keys, c.lo, c.todo, ins.payload, ins.bodyID, withBody, ins.now, c.out, ch)
	}
	if !reserving && ins.payload {
		size := len(ins.in.RawBody) + len(ins.in.Records[0].Event) + recordOverhead
		op := &gatherOp{ctx: ctx, key: string(c.key(c.todo[0])), size: size, fn: fn, durable: ins.durable,
			gated: true, committed: func() { ins.b.resv.apply(ch) }}
		err := ins.b.gather.write(op)
		ins.synced = op.synced != nil && err == nil
		return err
	}
	unlock := ins.b.resv.lock(reserving)
	defer unlock()
	err := ins.b.update(ctx, fn)
	if err == nil {
		ins.b.resv.apply(ch)
	}
	return err
}

// finish fills in the chunk's results. The final chunk's cache entries wait
// for the sync (publish); an earlier chunk's are cached now, as not synced.
func (ins *inserter) finish(c *insertChunk, final bool) {
	for i, o := range c.out {
		r := ins.in.Records[i]
		if o.inserted {
			ins.res[i] = store.InsertResult{Inserted: true}
		} else {
			ins.res[i] = store.InsertResult{Existing: o.existing, ExistingID: o.existingID}
		}
		if !final {
			ins.cachePut(c, i, r, o, false)
		}
	}
	for i, j := range c.dupOf {
		if ins.res[j].Inserted {
			ins.res[i] = store.InsertResult{Existing: ins.in.Records[j].Status, ExistingID: ins.in.Records[j].ID}
		} else {
			ins.res[i] = store.InsertResult{Existing: ins.res[j].Existing, ExistingID: ins.res[j].ExistingID}
		}
	}
	if final {
		ins.last = c
	}
}

// cachePut caches what the chunk learned about record i.
func (ins *inserter) cachePut(c *insertChunk, i int, r *store.Record, o insertOutcome, synced bool) {
	k := string(c.key(i))
	switch {
	case o.inserted:
		// The state just written, cached without reading it back: at
		// version 0 it gives way to any state read from Badger later
		// and never displaces one.
		ins.b.cache.put(k, c.gen, r.Status, expiresAt(r, ins.now), 0, synced)
	case o.existingID == r.ID:
		ins.b.cache.put(k, c.gen, o.existing, o.expiresAt, o.version, synced)
	}
}

// publish runs once everything is synced (if durable): the final chunk's
// cache entries, and the handover of the expected records that were
// inserted, which a worker may now deliver.
func (ins *inserter) publish(durable bool) {
	if c := ins.last; c != nil {
		for i, o := range c.out {
			ins.cachePut(c, i, ins.in.Records[i], o, durable)
		}
	}
	for _, i := range ins.expected {
		r := ins.in.Records[i]
		k := string(recordKey(r.Source, r.ID))
		if ins.res[i].Inserted {
			ins.b.hand.offer(k, r)
		} else {
			ins.b.hand.offer(k, nil)
		}
	}
	ins.expected = nil
}

// endExpectations ends what publish did not get to (an error).
func (ins *inserter) endExpectations() {
	for _, i := range ins.expected {
		r := ins.in.Records[i]
		ins.b.hand.offer(string(recordKey(r.Source, r.ID)), nil)
	}
}

// insertTxn is one attempt at inserting the records at idx. withBody writes
// the shared body entry (when bodyID is set) if anything was written. A
// reservation in memory holds its keys like a stored record; reserved
// records that get their keys are collected in ch instead of written.
func (b *Store) insertTxn(txn *badger.Txn, in *store.Ingest, keys [][]byte, lo int, idx []int, payload bool, bodyID []byte, withBody bool, now time.Time, out map[int]insertOutcome, ch *reservationChanges) error {
	var inserted [][]byte
	for _, i := range idx {
		r := in.Records[i]
		item, err := txn.Get(keys[i-lo])
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("reading %s %s: %w", r.Source, r.ID, err)
		default:
			out[i] = insertOutcome{existing: metaStatus[item.UserMeta()], existingID: r.ID, version: item.Version(), expiresAt: item.ExpiresAt()}
			continue
		}
		if held, live := b.resv.holder(false, string(keys[i-lo]), now); live {
			out[i] = insertOutcome{existing: store.StatusReserved, existingID: r.ID}
			continue
		} else if held != nil {
			ch.drop = append(ch.drop, held)
		}
		if r.DedupKey != "" {
			held, err := dedupHolder(txn, r, now)
			if err != nil {
				return fmt.Errorf("reading the dedup key of %s %s: %w", r.Source, r.ID, err)
			}
			if held != nil {
				out[i] = insertOutcome{existing: held.status, existingID: held.id}
				continue
			}
			if res, live := b.resv.holder(true, string(dedupKey(r.Source, r.DedupKey)), now); live {
				out[i] = insertOutcome{existing: store.StatusReserved, existingID: res.rec.ID}
				continue
			} else if res != nil {
				ch.drop = append(ch.drop, res)
			}
		}
		out[i] = insertOutcome{inserted: true}
		if r.Status != store.StatusReserved {
			inserted = append(inserted, keys[i-lo])
		}
	}
	if len(inserted) > 0 && bodyID != nil && withBody {
		if err := txn.Set(bodyKey(bodyID), encodeBodyValue(now, inserted, in.RawBody)); err != nil {
			return err
		}
	}
	for _, i := range idx {
		if !out[i].inserted {
			continue
		}
		r := in.Records[i]
		if r.Status == store.StatusReserved {
			r.ReservedUntil = now.Add(b.opts.ReservationExpiry)
			c := *r
			res := &reservation{rec: &c, key: string(keys[i-lo]), at: now, grp: ch.grp}
			if r.DedupKey != "" {
				res.dkey = string(dedupKey(r.Source, r.DedupKey))
			}
			ch.add = append(ch.add, res)
			continue
		}
		kind, body := bodyNone, []byte(nil)
		switch {
		case payload:
			kind, body = bodyPayload, in.RawBody
		case bodyID != nil:
			kind, body = bodyRef, bodyID
		}
		if err := b.writeRecord(txn, keys[i-lo], nil, persisted(r), kind, body, now); err != nil {
			return err
		}
		if r.DedupKey != "" {
			if err := writeDedup(txn, r, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshCache reads keys back from a fresh snapshot and caches the states
// that may be cached (see dedupCache). synced tells that the writes being
// refreshed were synced. The state read back may be a newer, unsynced
// update, but what dedup needs durable is the key's presence, and that was
// synced with the earlier write (a deletion in between bumps the cache
// generation and the put is dropped).
func (b *Store) refreshCache(keys [][]byte, synced bool) {
	if b.cache == nil || len(keys) == 0 {
		return
	}
	gen := b.cache.generation()
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	for _, k := range keys {
		item, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			b.cache.put(string(k), gen, "", 0, 0, false)
		case err == nil:
			b.cache.put(string(k), gen, metaStatus[item.UserMeta()], item.ExpiresAt(), item.Version(), synced)
		}
	}
}

// Get implements store.Store.
func (b *Store) Get(ctx context.Context, source, id string) (*store.Record, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	key := recordKey(source, id)
	// A reservation is looked up first: a delivered one leaves memory only
	// after its record is in Badger.
	if r := b.resv.get(string(key)); r != nil {
		return b.resv.view(r), nil
	}
	var rec *store.Record
	err = b.db.View(func(txn *badger.Txn) error {
		sr, _, err := readRecord(txn, key)
		if err != nil {
			return err
		}
		rec = sr.rec
		b.leases.view(string(key), rec)
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get %s %s: %w", source, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", source, id, err)
	}
	return rec, nil
}

// RawBody implements store.Store. For a batch, every record returns the whole
// request body it came in.
func (b *Store) RawBody(ctx context.Context, source, id string) ([]byte, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return nil, fmt.Errorf("raw body: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r := b.resv.get(string(recordKey(source, id))); r != nil {
		return bytes.Clone(r.grp.raw), nil
	}
	var body []byte
	err = b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(source, id))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			p, err := splitRecordValue(v)
			if err != nil {
				return err
			}
			switch p.bodyKind {
			case bodyPayload:
				return readPayload(txn, recordKey(source, id), func(_, raw []byte) { body = bytes.Clone(raw) })
			case bodyRef:
				bi, err := txn.Get(bodyKey(p.body))
				if errors.Is(err, badger.ErrKeyNotFound) {
					return errors.New("shared body entry is missing")
				}
				if err != nil {
					return err
				}
				return bi.Value(func(bv []byte) error {
					_, _, raw, err := decodeBodyValue(bv)
					body = append([]byte{}, raw...)
					return err
				})
			default:
				body = []byte{}
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("raw body of %s %s: %w", source, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw body of %s %s: %w", source, id, err)
	}
	return body, nil
}

// Release implements store.Store. Reservations live in memory (see
// reservations), so releasing one writes nothing. Releasing a key that is
// absent or no longer reserved (delivered meanwhile, or taken over after the
// reservation expired) does nothing and is not an error.
func (b *Store) Release(ctx context.Context, source, id string, reservedUntil time.Time) error {
	if err := store.ValidateKey(source, id); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.resv.release(string(recordKey(source, id)), reservedUntil)
	return nil
}
