package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is tern's bookkeeping of the applied migrations, in the
// store's schema. oldVersionTable is the one of the formats before
// deliveries had rows of their own (versions 1 to 4), which were never
// released: a schema holding it is refused, never migrated.
const (
	versionTable    = "webhook_gateway_schema"
	oldVersionTable = "webhook_gateway_schema_version"
)

// DefaultReservationExpiry is how long an unreleased sync reservation blocks
// its keys when Options leave it unset: longer than any sync delivery is
// allowed to take, short enough that the retries of a provider whose first
// request died with its gateway get through.
const DefaultReservationExpiry = 2 * time.Minute

// sweepInterval is how often each process deletes expired events and
// abandoned reservations; sweepBatch bounds one delete.
const (
	sweepInterval = time.Second
	sweepBatch    = 1000
)

// Options configure a Store.
type Options struct {
	// DSN is the PostgreSQL connection string (a URL or key=value pairs,
	// as libpq takes them).
	DSN string
	// Schema, when set, holds the store's tables; it is created if absent.
	// Empty uses the connection's default schema (normally public).
	Schema string
	// ReservationExpiry is how long an unreleased sync reservation blocks
	// its keys. Default: DefaultReservationExpiry.
	ReservationExpiry time.Duration
	// MaxConns bounds the connection pool. Default: pgxpool's (the larger
	// of 4 and the number of CPUs).
	MaxConns int32
	// Logger receives the store's warnings; it never sees the DSN's
	// password. Default: no logging.
	Logger *zap.Logger
	// Now is the store's clock: the received time of new events, the
	// expiry of reservations, dedup windows and retention, and the sweeps
	// compare against it rather than the database server's now(). Default
	// time.Now.
	Now func() time.Time
}

// Store is the PostgreSQL engine of store.Store, for several gateways
// sharing one database. Every state change is one round trip (a statement,
// or a server-side function that locks the event and rolls its status up),
// and the Inserts and RecordAttempts of concurrent callers share group
// commits (one pipelined transaction each), so any number of processes can
// use the same tables at once.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	log    *zap.Logger
	ins    *grouper[*insertReq]
	att    *grouper[*attemptReq]
	stats  commitStats
	notify *listener

	closeOnce sync.Once
	closed    chan struct{}
	sweepDone chan struct{}
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// Open connects to the database, applies the schema migrations (under an
// advisory lock, so several gateways starting at once apply each migration
// once) and starts the store's background work: the group-commit writers,
// the LISTEN connection and the retention sweep.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.ReservationExpiry <= 0 {
		opts.ReservationExpiry = DefaultReservationExpiry
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's parse errors never repeat the password.
		return nil, fmt.Errorf("postgres store: parsing the DSN: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// A 202 means committed: whatever the server's default, every write
	// of this store waits for its WAL flush.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	// The notification channel, for the triggers that notify (lanes_moved).
	cfg.ConnConfig.RuntimeParams[channelSetting] = channelFor(opts.Schema)
	if err := applyMigrations(ctx, cfg.ConnConfig, opts.Schema); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	s := &Store{
		pool:      pool,
		opts:      opts,
		log:       log,
		closed:    make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	s.ins = newInserter(s)
	s.att = newAttempter(s)
	s.notify = newListener(cfg.ConnConfig, channelFor(opts.Schema), log)
	go s.sweepLoop()
	return s, nil
}

// openLock is the advisory lock held while the schema is created and
// migrated. tern takes a lock of its own around each migration run; this one
// also covers CREATE SCHEMA IF NOT EXISTS, which two sessions running at once
// can fail on.
const openLock = int64(0x77686777) // "whgw"

// applyMigrations creates the schema if needed and brings it to the version
// this build embeds with tern, under an advisory lock: gateways starting
// together wait for each other instead of racing.
func applyMigrations(ctx context.Context, cc *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("postgres store: connecting to %s: %w", cc.Host, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", openLock); err != nil {
		return fmt.Errorf("postgres store: locking the schema for migration: %w", err)
	}
	// Closing the connection would release the lock too; unlocking keeps a
	// pooled connection (a proxy such as PgBouncer) from holding it.
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", openLock) }()
	if schema != "" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("postgres store: creating schema %q: %w", schema, err)
		}
	}
	if err := checkFormat(ctx, conn, schema); err != nil {
		return err
	}
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("postgres store: preparing migrations: %w", err)
	}
	if err := m.LoadMigrations(migrationsFS()); err != nil {
		return fmt.Errorf("postgres store: loading migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("postgres store: applying migrations: %w", err)
	}
	return nil
}

// checkFormat refuses a schema written by a build from before deliveries
// had rows of their own (its version table is oldVersionTable), with
// store.ErrUnsupportedFormat.
func checkFormat(ctx context.Context, conn *pgx.Conn, schema string) error {
	where := "the connection's default schema"
	if schema != "" {
		where = fmt.Sprintf("schema %q", schema)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, oldVersionTable).Scan(&exists); err != nil {
		return fmt.Errorf("postgres store: %s: looking for an earlier format: %w", where, err)
	}
	if !exists {
		return nil
	}
	var v int32
	if err := conn.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM `+pgx.Identifier{oldVersionTable}.Sanitize()).Scan(&v); err != nil {
		return fmt.Errorf("postgres store: %s: reading the earlier format's version: %w", where, err)
	}
	return fmt.Errorf("postgres store: %s: %w: version %d, written by a build from before deliveries were bound to destinations, "+
		"a format that was never released and is not migrated; drop its tables (or use another schema) and start empty", where, store.ErrUnsupportedFormat, v)
}

func migrationsFS() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Close stops the background work and closes the pool. It is safe to call
// more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.ins.stop()
		s.att.stop()
		s.notify.stop()
		<-s.sweepDone
		s.pool.Close()
	})
	return nil
}

// enter refuses calls on a closed store with store.ErrClosed, as the Badger
// engine does.
func (s *Store) enter() error {
	select {
	case <-s.closed:
		return store.ErrClosed
	default:
		return nil
	}
}

// Stats returns the group-commit counters since Open, in the shape the
// Badger engine reports them (so one set of metrics covers both): Syncs is
// the number of group commits, each one WAL flush; Waits the durable writes
// they carried (Inserts and RecordAttempts); SyncBatches the commits by how
// many writes each carried, in the buckets of store.SyncBatchBounds.
func (s *Store) Stats() store.Stats {
	return store.Stats{Syncs: s.stats.commits.Load(), Waits: s.stats.requests.Load(), SyncBatches: s.stats.batches.Counts()}
}

// Subscribe implements store.Notifier: fn runs on the listener goroutine for
// each notification of a pending event committed by any process.
func (s *Store) Subscribe(fn func(destination string)) (stop func()) {
	return s.notify.subscribe(fn)
}

// sweepLoop deletes settled events past their retention, reservations
// abandoned past their expiry and dedup keys past their holding period, and
// lets go the lanes held by a dead worker's lease, a bounded batch per
// statement. Every process sweeps; SKIP LOCKED keeps two sweeps off the
// same rows.
func (s *Store) sweepLoop() {
	defer close(s.sweepDone)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		for _, q := range []string{sqlSweepExpired, sqlSweepReservations, sqlSweepDedupKeys, sqlSweepLaneLeases} {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				tag, err := s.pool.Exec(ctx, q, s.opts.Now(), sweepBatch)
				cancel()
				if err != nil {
					s.log.Debug("retention sweep", zap.Error(err))
					break
				}
				if tag.RowsAffected() < sweepBatch {
					break
				}
			}
		}
	}
}

const (
	sqlSweepExpired = `DELETE FROM events WHERE (source, id) IN (
		SELECT source, id FROM events WHERE expires_at <= $1
		ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`
	// An abandoned reservation (its process died mid-delivery) would
	// otherwise stay until a retry of the same event replaces it.
	sqlSweepReservations = `DELETE FROM events WHERE (source, id) IN (
		SELECT source, id FROM events WHERE status = 'reserved' AND reserved_until <= $1
		ORDER BY reserved_until LIMIT $2 FOR UPDATE SKIP LOCKED)`
	// A delivery a replay delivered while a worker leased it holds its
	// lane until that worker records its attempt; a worker that died
	// never does, and the lane goes on once its lease has run out.
	sqlSweepLaneLeases = `UPDATE deliveries SET lane_hold = false, lane_head = false
		WHERE (source, id, destination) IN (
		SELECT source, id, destination FROM deliveries
		WHERE lane_hold AND status IN ('delivered', 'skipped') AND lease_until <= $1
		ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED)`
	sqlSweepDedupKeys = `DELETE FROM dedup_keys WHERE (source, dedup_key) IN (
		SELECT source, dedup_key FROM dedup_keys WHERE held_until <= $1
		ORDER BY held_until LIMIT $2 FOR UPDATE SKIP LOCKED)`
)
