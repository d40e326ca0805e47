// Package store keeps every event the gateway accepts: its dedup keys, the
// raw request, the canonical event and its delivery history.
//
// The contract is the Store interface: one method per state change, each a
// single conditional write in any engine, so that an embedded database and a
// shared one (PostgreSQL, for several gateways behind one load balancer)
// implement the same life cycle. The conformance suite in store/storetest
// checks an engine against it. This package is the contract alone and
// imports nothing outside the standard library, so that its importers link
// no engine. The embedded engine is store/badger; the shared one is
// store/postgres, for several gateways on one database.
//
// # Life cycle
//
// A record is one event; it has a delivery (Delivery) per destination its
// route named and its filters matched, fixed at Insert. Each delivery is in
// one status at a time, and each transition below is one method acting on
// one delivery (or, for Insert, Release, Purge and expiry, on the record);
// its condition is checked in the same write. The record's Status is the
// roll-up of its deliveries' (Rollup), rewritten with each transition, and
// is what listings, counts and filters see.
//
//	delivery from      to                 method          condition
//	(absent)           pending            Insert          id and dedup key free
//	(absent)           reserved + held    Insert          id and dedup key free
//	(absent)           (no delivery)      Insert          matched no destination: unmatched
//	released           pending|reserved   Insert          dedup key free; attempts carried over
//	reserved           released           Release         ReservedUntil is the caller's
//	reserved           delivered          MarkDelivered   record present
//	held               pending            MarkDelivered   in the same write
//	pending|retrying   (leased)           Claim           due, no live lease, head of its lane
//	(leased)           delivered          RecordAttempt   caller holds the lease
//	(leased)           retrying           RecordAttempt   caller holds the lease
//	(leased)           dead               RecordAttempt   caller holds the lease
//	(leased)           pending|retrying   ReleaseLease    caller holds the lease
//	any but reserved,  delivered          RecordReplay    backend answered 2xx
//	  held
//	dead               skipped            Skip            operator's decision
//	record: any        (absent)           Purge           matches the filter
//	record: settled    (absent)           (expiry)        Retention has passed
//
// A record is settled (Settled) when it is delivered (every delivery
// delivered or skipped), released or unmatched.
//
// A key is free when no record holds it: for the id, no record with that
// (Source, ID), or only a reservation past its ReservedUntil; for a dedup
// key, no record holding (Source, DedupKey) inserted less than DedupWindow
// ago, nor a live reservation holding it. An expired reservation is
// replaced by the insert that takes its key.
//
// A released record is a sync delivery the backend refused: the gateway
// answered the provider with an error so that it retries, and the record
// stays, with the failed attempt, so the operator sees it ("502 at 02:13,
// delivered at 02:18 on the provider's retry"). It holds no key, neither its
// id nor its dedup key, so it never makes the retry a duplicate: the insert
// of the same (Source, ID) takes its place and starts with its attempts, so
// the delivered record shows the failed attempt, then the delivered one. A
// record only a dedup key named (an id of its own, for senders that give
// none) cannot be matched by the retry, which gets a new id: it stays as an
// entry of its own, listed and counted as released, until its Retention
// has passed (as a delivered record's) or it is purged. It is never claimed
// and never in flight; a replay delivers it like any other record.
//
// The async destinations of a sync route are held while its sync delivery
// is reserved or released: MarkDelivered makes them pending in the write
// that marks the sync delivery delivered, so they get the event exactly
// when the provider has been answered 2xx, and a provider's retry after a
// failed sync forward never doubles them.
//
// # Destinations
//
// Every delivery names its destination, written at Insert and never
// changed. Claim takes the destinations its caller delivers to, never
// sources: two routes writing one source (two accounts of one provider)
// each claim only their own destinations' deliveries, whichever config is
// loaded. A replay goes to a delivery's destination unless the operator
// names another; an attempt sent to another destination names it
// (Attempt.Destination) and is history only, since the delivery's own
// destination has still not had the event. A delivery whose destination no
// loaded config serves stays pending, visible in every listing, until a
// config serves it again, it is replayed, or its record is purged.
//
// Data written in an earlier format is refused at Open with
// ErrUnsupportedFormat, never read.
//
// # Ordered lanes
//
// A delivery with a Lane belongs to the lane (Destination, Lane). Insert
// numbers a lane's deliveries (Sequence) in the order it stores them, and
// MarkDelivered a sync route's held ones when it makes them pending; Claim
// hands out only a lane's head, the delivery of smallest Sequence that is
// neither delivered nor skipped, and only when no lease is on it, so a
// lane's deliveries reach the backend one at a time in acceptance order,
// in one engine or many. A dead head parks its lane: nothing behind it is
// claimed until it is replayed to delivered or skipped (Skip).
//
// A lease is not a status: it is an owner and an end time on a pending or
// retrying delivery that a delivery worker has claimed, so that two workers
// (two configurations alive during a reload) never attempt one delivery at
// once. A lease that runs out makes the delivery claimable again; an attempt
// recorded after that by the old owner is kept as history but leaves the
// state to the new owner (ErrLeaseLost). The reservation of a sync delivery
// and the lease of an async one are separate: ReservedUntil and LeaseUntil.
//
// A transition never reads an event's payload (the canonical event and the
// raw body), only its small state record. The delivery of a reservation is
// a blind write: nothing of the event is stored before it. The other
// transitions read the state record in the same transaction as they write
// it, because their condition (the status, the lease's owner) and the
// attempt history live there, and because that read is what lets the
// engine see a concurrent Purge: a blind write after it would bring a
// purged record back.
//
// An engine may hold reservations outside its tables when nothing but its
// own process can reach the store: Badger keeps them in memory (its
// directory lock admits one process), so a sync delivery writes its record
// once, delivered, and a process killed mid-forward leaves nothing behind. A
// reservation is still a record for every reader (Get, RawBody, List,
// Counts, Purge) and holds its keys like one. A shared engine (PostgreSQL)
// stores it, and relies on ReservedUntil for a process that died.
//
// # Time
//
// Claim takes the time it decides by; everything else an engine decides by
// time (received times, reservation and dedup expiry, retention, sweeps)
// reads the clock the engine was opened with (an option, time.Now by
// default), never the database server's, so that tests advance time instead
// of sleeping and processes sharing a database agree on what expired.
//
// # Indexes
//
// Every engine answers these queries:
//
//   - by (Source, ID): Get, RawBody and every transition;
//   - by (Source, DedupKey) within its window: Insert;
//   - by due time, per destination, over pending and retrying deliveries,
//     and for lanes by (destination, lane, sequence): Claim;
//   - by destination, with the delivery's status: List and Counts with
//     Filter.Destination;
//   - by ReceivedAt, newest first, with status, provider and type beside it:
//     List, Counts and Purge;
//   - by Subject, then ReceivedAt newest first, over records that have a
//     subject: List and Purge with Filter.Subject, so "everything about
//     one customer" reads that subject's records only. Badger keeps an
//     entry per record under the subject's prefix (s, the subject, NUL),
//     written with every state of the record alongside its listing entry,
//     carrying the same summary and expiry (so retention removes both),
//     and deleted with the record by purge; PostgreSQL has a partial index
//     on (subject, received_at, source, id). A subject filter pages with
//     the same cursor as any listing.
//
// Filter.ID with Filter.Source selects one record through its key, never
// a scan: it is how one item of a batch, alike in every other field, is
// purged alone.
package store
