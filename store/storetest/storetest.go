// Package storetest is the conformance suite of the store contract: every
// engine runs it with one line,
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openMyEngine) }
//
// The tests go through store.Store alone, so what they check is what every
// engine must do: atomic insert-if-absent under concurrent callers, dedup
// keys and their windows, reservations and their expiry, lease exclusion
// between owners, the transitions of the life cycle, retention, listing,
// counts and purge. What is particular to one engine (its cache, its files,
// its recovery) is tested beside it.
//
// Some tests wait for real time to pass (a reservation or a dedup window of
// tens of milliseconds, a retention of one second); none asserts how long
// anything took.
package storetest

import (
	"context"
	"encoding/json"
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

// Run runs the whole suite against the engine that open opens, each test a
// subtest of t.
func Run(t *testing.T, open Open) {
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
		{"TraceContextRoundTrips", testTraceContextRoundTrips},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
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

func rec(source, id string, st store.Status) *store.Record {
	return &store.Record{
		Source:   source,
		ID:       id,
		Provider: "usaepay",
		Type:     "transaction.sale.success",
		Status:   st,
		Event:    mustJSON(map[string]string{"specversion": "1.0", "id": id, "source": source}),
		Headers:  map[string][]string{"Content-Type": {"application/json"}},
	}
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

func mustInsert(t testing.TB, s store.Store, in *store.Ingest, durable bool) []store.InsertResult {
	t.Helper()
	res, err := s.Insert(context.Background(), in, durable)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func listIDs(rs []*store.Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}
