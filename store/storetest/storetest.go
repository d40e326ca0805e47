// Package storetest is the conformance suite of the store contract: every
// engine runs it with one line,
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openMyEngine) }
//
// and an engine that several processes share (PostgreSQL) with
//
//	storetest.RunShared(t, openMyEngine, openAnotherOnTheSameDatabase)
//
// so that the tests of workers in several engines on one store (ordered
// lanes: each lane one delivery at a time, in order, exactly once) run them
// in separate engines.
//
// The tests go through store.Store alone, so what they check is what every
// engine must do: atomic insert-if-absent under concurrent callers, dedup
// keys and their windows, reservations and their expiry, lease exclusion
// between owners, the transitions of the life cycle (each delivery of a
// fanned-out event on its own, the held deliveries of a sync route,
// unmatched events, Skip), ordered lanes, retention, listing by every
// filter, counts and purge. What is particular to one engine (its cache,
// its files, its recovery) is tested beside it.
//
// Some tests wait for real time to pass (a reservation or a dedup window of
// tens of milliseconds, a retention of one second); none asserts how long
// anything took.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Options are the settings the suite needs an engine to honour.
type Options struct {
	// ReservationExpiry is how long an unreleased reservation blocks its
	// keys (store.Record.ReservedUntil); zero takes the engine's default,
	// which must be at least a minute.
	ReservationExpiry time.Duration
	// Now, when set, is the clock the engine must read for every decision
	// by time that Claim's argument does not cover (see the store package's
	// Time section); nil leaves the engine's default.
	Now func() time.Time
}

// Open opens a new, empty store of the engine under test for t, configured
// by o, and closes it when t ends. reopen, called after the suite has closed
// the store, opens the same database again with the same options, as a
// restart would; the suite closes what it returns.
type Open func(t *testing.T, o Options) (s store.Store, reopen func() store.Store)

// Peer opens another engine on the database of s, as a second gateway
// sharing that database would (another process, with its own leases and
// caches), for the tests that run workers in several engines on one
// store; the suite closes what it returns before s.
type Peer func(t *testing.T, s store.Store) store.Store

// Run runs the whole suite against the engine that open opens, each test a
// subtest of t. An engine that one process alone can open runs it so; the
// tests of several engines on one store then run all their workers on the
// one engine.
func Run(t *testing.T, open Open) { RunShared(t, open, nil) }

// RunShared is Run for an engine that several processes share: the tests
// of several engines on one store open the others with peer (nil: as Run).
func RunShared(t *testing.T, open Open, peer Peer) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"InsertGetDuplicate", testInsertGetDuplicate},
		{"KeysAreUnambiguous", testKeysAreUnambiguous},
		{"InsertConcurrentSameKey", testInsertConcurrentSameKey},
		{"BatchSharesBody", testBatchSharesBody},
		{"ReopenPersistence", testReopenPersistence},
		{"ReservationExpiry", testReservationExpiry},
		{"Release", testRelease},
		{"ReleaseLeavesATakenOverReservation", testReleaseLeavesATakenOverReservation},
		{"ReleasedAttemptsCarriedOver", testReleasedAttemptsCarriedOver},
		{"ReleasedHoldsNoKey", testReleasedHoldsNoKey},
		{"ReleasedConcurrentInserts", testReleasedConcurrentInserts},
		{"MarkDeliveredExpires", testMarkDeliveredExpires},
		{"TransitionErrors", testTransitionErrors},
		{"ReplaysConcurrent", testReplaysConcurrent},
		{"ClaimExclusiveTwoOwners", testClaimExclusiveTwoOwners},
		{"ClaimLeaseExpiryAndRelease", testClaimLeaseExpiryAndRelease},
		{"ClaimByDestination", testClaimByDestination},
		{"LateAttemptKeepsTakenOverLease", testLateAttemptKeepsTakenOverLease},
		{"SettledRecordShowsNoLease", testSettledRecordShowsNoLease},
		{"ListFiltersAndPaging", testListFiltersAndPaging},
		{"CountsAndPurge", testCountsAndPurge},
		{"SubjectListing", testSubjectListing},
		{"SubjectPaging", testSubjectPaging},
		{"SubjectPurge", testSubjectPurge},
		{"IDSelectsOne", testIDSelectsOne},
		{"DedupKeyWithinWindow", testDedupKeyWithinWindow},
		{"DedupKeyAfterWindow", testDedupKeyAfterWindow},
		{"DedupKeyIDStillUnique", testDedupKeyIDStillUnique},
		{"DedupKeyConcurrent", testDedupKeyConcurrent},
		{"DedupKeyWithinOneIngest", testDedupKeyWithinOneIngest},
		{"DedupKeySurvivesRestart", testDedupKeySurvivesRestart},
		{"DedupKeyReleaseFreesIt", testDedupKeyReleaseFreesIt},
		{"DedupKeyReservationExpiry", testDedupKeyReservationExpiry},
		{"DedupKeyPurgeRemovesIt", testDedupKeyPurgeRemovesIt},
		{"DedupKeyErrors", testDedupKeyErrors},
		{"FanOut", testFanOut},
		{"HeldDeliveries", testHeldDeliveries},
		{"Unmatched", testUnmatched},
		{"Skip", testSkip},
		{"NoDelivery", testNoDelivery},
		{"FilterDestination", testFilterDestination},
		{"LaneSequences", testLaneSequences},
		{"LaneSequencesConcurrent", testLaneSequencesConcurrent},
		{"LaneHeadOnly", testLaneHeadOnly},
		{"LaneParkReplaySkip", testLaneParkReplaySkip},
		{"TraceContextRoundTrips", testTraceContextRoundTrips},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
	shared := []struct {
		name string
		fn   func(*testing.T, Open, Peer)
	}{
		{"LanesManyEngines", testLanesManyEngines},
	}
	for _, tc := range shared {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open, peer) })
	}
}

// engines returns s and m-1 more engines on its database (peer), or s m
// times when the engine is not shared.
func engines(t *testing.T, s store.Store, peer Peer, m int) []store.Store {
	out := []store.Store{s}
	for range m - 1 {
		if peer == nil {
			out = append(out, s)
			continue
		}
		p := peer(t, s)
		t.Cleanup(func() { _ = p.Close() })
		out = append(out, p)
	}
	return out
}

// openStore opens a store when the test has no use for a restart.
func openStore(t *testing.T, open Open, o Options) store.Store {
	s, _ := open(t, o)
	return s
}

// restart closes s and opens its database again.
func restart(t *testing.T, s store.Store, reopen func() store.Store) store.Store {
	t.Helper()
	if reopen == nil {
		t.Skip("the engine has nothing to restart")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return reopen()
}

// rec is a record with one delivery, to a destination named after its
// source, in status st: pending or reserved as inserted, or retrying,
// delivered or dead, which mustInsert brings it to.
func rec(source, id string, st store.Status) *store.Record {
	return &store.Record{
		Source:     source,
		ID:         id,
		Provider:   "usaepay",
		Type:       "transaction.sale.success",
		Deliveries: []store.Delivery{{Destination: source, Status: st}},
		Event:      mustJSON(map[string]string{"specversion": "1.0", "id": id, "source": source}),
		Headers:    map[string][]string{"Content-Type": {"application/json"}},
	}
}

// to is a record with a delivery to each destination, in status st
// (pending), or for a sync route (st reserved) the first reserved and the
// others held.
func to(source, id string, st store.Status, destinations ...string) *store.Record {
	r := rec(source, id, st)
	r.Deliveries = nil
	for i, d := range destinations {
		ds := st
		if st == store.StatusReserved && i > 0 {
			ds = store.StatusHeld
		}
		r.Deliveries = append(r.Deliveries, store.Delivery{Destination: d, Status: ds})
	}
	return r
}

// dl is a record's first delivery (the only one of a rec), or a zero one
// for a record that has none, so a failing check reports rather than
// panics.
func dl(r *store.Record) *store.Delivery {
	if r == nil || len(r.Deliveries) == 0 {
		return &store.Delivery{}
	}
	return &r.Deliveries[0]
}

// leased is the delivery a Claim leased.
func leased(c store.Claimed) *store.Delivery {
	if d := c.Record.Delivery(c.Destination); d != nil {
		return d
	}
	return &store.Delivery{}
}

// keyed is a record with an id of its own that dedups on key.
func keyed(id, key string, window time.Duration, st store.Status) *store.Record {
	r := rec("/loyalty", id, st)
	r.DedupKey, r.DedupWindow = key, window
	return r
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func single(r *store.Record, body string) *store.Ingest {
	return &store.Ingest{RawBody: []byte(body), Records: []*store.Record{r}}
}

// mustInsert inserts in. A delivery given as retrying, delivered or dead,
// which Insert does not take (or a record with one delivery given such a
// Status), is inserted pending and then brought there as a worker would:
// claimed and attempted once (retrying: due in an hour).
func mustInsert(t testing.TB, s store.Store, in *store.Ingest, durable bool) []store.InsertResult {
	t.Helper()
	type target struct {
		r    *store.Record
		dest string
		to   store.Status
	}
	var targets []target
	for _, r := range in.Records {
		if len(r.Deliveries) == 1 && r.Deliveries[0].Status == store.StatusPending {
			// A test that set the record's status means its delivery's.
			r.Deliveries[0].Status = r.Status
		}
		for i := range r.Deliveries {
			d := &r.Deliveries[i]
			switch d.Status {
			case store.StatusRetrying, store.StatusDelivered, store.StatusDead:
				targets = append(targets, target{r, d.Destination, d.Status})
				d.Status = store.StatusPending
			}
		}
	}
	res, err := s.Insert(context.Background(), in, durable)
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range targets {
		if !res[slices.Index(in.Records, tg.r)].Inserted {
			continue
		}
		decision := map[store.Status]store.Decision{
			store.StatusRetrying:  store.RetryAt(time.Now().Add(time.Hour)),
			store.StatusDelivered: store.Delivered(),
			store.StatusDead:      store.Dead(store.DeadAttemptsExhausted),
		}[tg.to]
		attempt(t, s, tg.r.Source, tg.r.ID, tg.dest, fmt.Sprint("setup-", i), 500, decision)
		tg.r.Delivery(tg.dest).Status = tg.to
		tg.r.Status = store.Rollup(tg.r.Deliveries)
	}
	return res
}

// attempt claims the delivery of (source, id) to dest as owner and records
// an attempt answered status with decision d. Other deliveries the claims
// leased on the way are given back.
func attempt(t testing.TB, s store.Store, source, id, dest, owner string, status int, d store.Decision) {
	t.Helper()
	ctx := context.Background()
	var others []store.Claimed
	defer func() {
		for _, c := range others {
			if err := s.ReleaseLease(ctx, c.Record.Source, c.Record.ID, c.Destination, owner); err != nil {
				t.Error(err)
			}
		}
	}()
	for {
		got, err := s.Claim(ctx, owner, []string{dest}, time.Now(), time.Minute, store.MaxListLimit)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			r, err := s.Get(ctx, source, id)
			t.Fatalf("the delivery of %s %s to %s is not claimable: %+v %v", source, id, dest, r, err)
		}
		var mine *store.Claimed
		for _, c := range got {
			if c.Record.Source == source && c.Record.ID == id {
				mine = &c
				continue
			}
			others = append(others, c)
		}
		if mine != nil {
			a := store.Attempt{Number: len(leased(*mine).Attempts) + 1, At: time.Now(), Status: status}
			if err := s.RecordAttempt(ctx, source, id, dest, owner, a, d); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

func claimedIDs(cs []store.Claimed) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.Record.ID+"→"+c.Destination)
	}
	return ids
}

func listIDs(rs []*store.Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}
