// Package postgres is the PostgreSQL engine of the store contract
// (store.Store), for several gateways sharing one database behind a load
// balancer. It passes the same conformance suite as the embedded Badger
// engine.
//
// # Schema
//
// The tables are created by embedded migrations (tern), applied at Open
// under an advisory lock. events holds one row per record, keyed by
// (source, id); bodies holds the raw request of a batch once; dedup_keys
// holds the dedup key of a sender that gives no event id, with the time
// until which it is held. Ids, keys and JSON documents are bytea: an id may
// hold any byte.
//
// # Writes
//
// Insert is insert-if-absent in one statement: a single-event request
// without a dedup key (the common case) is one INSERT ... ON CONFLICT DO
// NOTHING RETURNING, its raw body inline; a batch, a record with a dedup
// key, or an id already taken goes through a server-side function per
// record (insert_event) that also replaces an expired holder and answers
// the status of a live one. Both rest on ON CONFLICT DO NOTHING on the
// primary keys, so exactly one of any number of concurrent inserters wins,
// in any process. Concurrent Inserts are gathered
// into group commits: one pipelined batch, which PostgreSQL runs as one
// implicit transaction, one round trip and one WAL flush, with
// synchronous_commit on; the RecordAttempts of concurrent delivery workers
// are grouped the same way. Every other transition is one UPDATE or DELETE
// whose condition is in its WHERE clause (see transitions.go).
//
// # Several processes
//
// Claims take rows with FOR UPDATE SKIP LOCKED and mark them with a lease
// (lease_owner, lease_until); a process that dies holding leases has its
// events claimed by the others once the leases run out. Sync reservations
// are rows with status reserved and reserved_until, seen by every process.
// A commit that stores pending events sends a NOTIFY per destination, which
// wakes the delivery workers of every process serving it (Store implements
// store.Notifier).
//
// # Format
//
// The schema is migrated at Open (migrations/). A schema at version 1,
// whose events name no destination, is refused with
// store.ErrUnsupportedFormat: that format was never released.
//
// # Indexes
//
//   - events primary key (source, id): Get, RawBody, every transition;
//   - dedup_keys primary key (source, dedup_key): Insert;
//   - events_due, partial over pending and retrying rows, on the row's
//     destination and the time it falls due (its next attempt, or its
//     arrival): Claim, which checks the lease on the row, so that taking a
//     lease updates no index;
//   - events_received (received_at, source, id): List newest first and its
//     cursor; events_source_received, events_status_received,
//     events_type_received: List by source, status or type, and Counts
//     (an index-only scan of events_status_received);
//   - events_expires, events_reserved, dedup_keys_held: the sweep of
//     expired events, abandoned reservations and spent dedup keys, in
//     batches of 1000.
package postgres
