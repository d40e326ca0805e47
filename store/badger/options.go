package badger

import (
	"time"

	"go.uber.org/zap"
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

	// MemTableSize is the size of each Badger memtable. Default 8 MiB.
	// Flushing a memtable builds its whole table in a buffer from Badger's
	// allocator pool, which keeps up to eight of them, each at the size
	// of the largest table it ever built, for as long as writes go on. So
	// the memtable size bounds most of the resident heap of a store under
	// sustained load: ingesting 1,500 events/s with a growing backlog, the
	// process peaked at 715-779 MiB of RSS with 8 MiB memtables and 392
	// MiB with 2 MiB ones (and 256 KiB tables, see BaseTableSize), but the
	// smaller sizes cost a quarter of the async acknowledgements and a
	// third more CPU per request in the same runs (docs/BENCHMARKS.md), so
	// they are not the default; set them where memory matters more.
	// One transaction can hold at most 15% of it (values in the value log
	// count by their pointer), so a batch too large for one transaction is
	// inserted in several (each record still atomically).
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
	// memory, several at once, from the same allocator pool as memtable
	// flushes, so the table size sets the heap of a store ingesting flat
	// out. With a million events bulk-loaded, 512 KiB tables peaked at 361
	// MiB of RSS against 653 MiB for 2 MiB ones; under sustained load with
	// a backlog, 2 MiB memtables peaked at 392 MiB with 256 KiB tables and
	// 553 MiB with 512 KiB ones. The price is more table files, each an
	// open descriptor: about 250 per million retained 1 KB events.
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

	// Now is the store's clock: the received time of new events, the
	// expiry of reservations and dedup windows, and the lease and
	// reservation sweeps read it. Default time.Now. Badger itself drops
	// expired entries (dedup keys, delivered records past their retention)
	// on the wall clock, so a clock ahead of it can only keep them longer.
	Now func() time.Time
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
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
