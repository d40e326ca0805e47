// Package postgres is the PostgreSQL engine of the store contract
// (store.Store), for several gateways sharing one database behind a load
// balancer. It passes the same conformance suite as the embedded Badger
// engine.
//
// # Schema
//
// The tables are created by one embedded migration (tern), applied at Open
// under an advisory lock. events holds one row per record, keyed by
// (source, id), with the roll-up of its deliveries' statuses (store.Rollup)
// in its status column; deliveries holds one row per (record, destination):
// status, attempts, next attempt, replays, dead reason, lease, lane and
// sequence; lanes holds the last sequence number given in each
// (destination, lane); bodies holds the raw request of a batch once;
// dedup_keys holds the dedup key of a sender that gives no event id, with
// the time until which it is held. Ids, keys, lanes and the event's JSON
// documents are bytea: an id may hold any byte. Attempts are json values
// (not jsonb, which refuses a \u0000 escape).
//
// # Writes
//
// Insert is insert-if-absent: a single-event request without a dedup key
// (the common case) is one statement, an INSERT ... ON CONFLICT DO NOTHING
// RETURNING of the event, its raw body inline, whose row feeds the insert of
// its deliveries (insert_deliveries); a batch, a record with a dedup key, or
// an id already taken goes through a server-side function per record
// (insert_event) that also replaces an expired holder or a released record
// (carrying each delivery's attempts over to the delivery of the same
// destination) and answers the status of a live one. Both rest on ON
// CONFLICT DO NOTHING on the primary keys, so exactly one of any number of
// concurrent inserters wins, in any process. A laned pending delivery takes
// its sequence number with INSERT ... ON CONFLICT DO UPDATE ... RETURNING on
// its lanes row in the inserting transaction: the row lock orders the
// inserters of one lane, so the numbers increase in commit order (a group
// of inserts locks its lanes' rows first, in one order, so that two groups
// wait for each other instead of deadlocking). A sync route's held
// delivery is numbered by mark_delivered, when the event is accepted. A
// laned delivery goes through insert_deliveries, never the one-statement
// insert: whether it heads its lane is decided in a statement of its own,
// after its lane's row is locked.
// Concurrent Inserts are gathered into group commits: one pipelined batch,
// which PostgreSQL runs as one implicit transaction, one round trip and one
// WAL flush, with synchronous_commit on; the RecordAttempts of concurrent
// delivery workers are grouped the same way (in key order, so two
// processes' groups never deadlock).
//
// Every other transition is one call of a server-side function (release_event,
// mark_delivered, record_attempt, release_lease, record_replay,
// skip_delivery): one round trip and one transaction that locks the event's
// row, checks the transition's condition, updates the delivery and rewrites
// the event's status as the roll-up of its deliveries (settle), with its
// expiry when it settles. The event's row lock puts the transitions of one
// event's several deliveries one after the other, so each roll-up sees the
// others' results.
//
// # Claims and lanes across processes
//
// Claim updates delivery rows chosen with FOR UPDATE SKIP LOCKED (by an
// ordered scan of the claim index per destination, which stops at the
// claim's size however deep the backlog) and marks
// them with a lease (lease_owner, lease_until): claimers of several
// processes never wait for each other and never lease one delivery twice,
// and a process that dies holding leases has its deliveries claimed by the
// others once the leases run out. A claim commits with its WAL flushed,
// like every write: a lease lost to a crash of the database server would
// let another gateway send the delivery again while its owner is still
// sending it.
//
// A laned delivery holds its lane (lane_hold) until it is delivered or
// skipped with no live lease on it (a replay may deliver it while a
// worker's attempt is in flight). The holding delivery of smallest sequence
// is the lane's head (lane_head), and the claim index holds only unlaned
// deliveries and heads, so a backlog waiting behind its lanes' heads (their
// backend down for an hour) is not walked by every claim. The head is kept
// under the lanes row's lock: an insert decides whether its delivery heads
// the lane after taking that lock, and the lanes_moved triggers, when a
// delivery stops holding its lane or is deleted (purge, retention), take it
// and make the next holding delivery the head, notifying its destination.
// Whichever of the two takes the lock second sees what the first
// committed, so no lane is left without a head. A delivery left holding its
// lane by a dead worker's lease is let go by the sweep once the lease has
// run out. On top of the index, the claim checks on the rows that nothing
// ahead holds the lane, so no mistake in keeping heads could put two
// deliveries of a lane in flight: at most it would stall the lane. So at
// most one delivery of a lane is ever under a lease, in any number of
// processes, and a dead head parks its lane until it is replayed to
// delivered or skipped.
//
// Under READ COMMITTED the claim reads the lane in its statement's
// snapshot. That snapshot can only be behind, never ahead: a head that
// turned delivered after it still blocks the delivery behind it (the next
// claim, woken by the notification that commit sent, takes it), nothing
// ahead of a delivery can start holding its lane again (a delivered or
// skipped delivery is never claimed; sequence numbers are given in commit
// order), and the row's own condition (status, lease) is evaluated again on
// its newest version when its row lock is taken, so of two processes that
// both see a new head only one leases it. Being behind costs a claim at
// most, never a second delivery of a lane in flight.
//
// Sync reservations are rows with status reserved and reserved_until, seen
// by every process; the async deliveries of a sync route are held rows,
// made pending by mark_delivered in the transaction that marks the sync
// delivery delivered.
//
// # Notifications
//
// A commit that makes deliveries pending sends a NOTIFY per destination
// (an insert, mark_delivered, a laned delivery letting go of its lane, a
// lease given back), which wakes the delivery workers of every process
// serving it (Store implements store.Notifier); PostgreSQL folds the
// repeats of one transaction into one.
//
// # Format
//
// The formats before this one (whose tern version table was
// webhook_gateway_schema_version, versions 1 to 4) were never released: a
// schema holding one is refused at Open with store.ErrUnsupportedFormat,
// not migrated.
//
// # Indexes
//
//   - events primary key (source, id): Get, RawBody, every transition;
//     deliveries primary key (source, id, destination): a record's
//     deliveries and each transition of one;
//   - dedup_keys primary key (source, dedup_key): Insert;
//   - deliveries_due, partial over pending and retrying rows without a
//     lane or at the head of theirs, on the destination and the time the
//     delivery falls due (its next attempt, or its event's arrival): Claim,
//     which checks the lease on the row, so that taking a lease updates no
//     index (a HOT update);
//   - deliveries_lane, partial over the rows holding their lane, on
//     (destination, lane, sequence): Claim's check of what is ahead, the
//     choice of a lane's next head;
//   - deliveries_lane_leased: the sweep of lanes held by a dead worker's
//     lease;
//   - deliveries_destination_status: DeliveryCounts (index-only) and
//     Filter.Destination with Filter.Status;
//   - events_received (received_at, source, id): List newest first and its
//     cursor; events_source_received, events_status_received,
//     events_type_received, events_subject_received: List by source,
//     status, type or subject, and Counts (an index-only scan of
//     events_status_received);
//   - events_expires, events_reserved, dedup_keys_held: the sweep of
//     expired events, abandoned reservations and spent dedup keys, in
//     batches of 1000.
//
// A lanes row is kept for as long as the schema: a lane's numbering never
// restarts, so a backend can tell an old sequence number from a new one.
// It is one small row per (destination, lane key) ever seen.
package postgres
