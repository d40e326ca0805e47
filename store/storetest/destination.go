package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// testClaimByDestination: two routes writing one source (two accounts of
// one provider) bind their records to destinations of their own; a claim
// for one destination never returns the other's records, whatever their
// source, before and after a retry and across a restart.
func testClaimByDestination(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	bound := func(id, dest string) *store.Record { return to("/usaepay", id, store.StatusPending, dest) }
	// One batch holding both destinations' records, single inserts, one
	// to a destination named after the source, and another source bound
	// to destination a.
	batch := &store.Ingest{RawBody: []byte("[]")}
	for i := range 10 {
		batch.Records = append(batch.Records, bound(fmt.Sprint("a", i), "a"), bound(fmt.Sprint("b", i), "b"))
	}
	mustInsert(t, b, batch, true)
	mustInsert(t, b, single(bound("a-single", "a"), "{}"), true)
	mustInsert(t, b, single(bound("b-single", "b"), "{}"), true)
	mustInsert(t, b, single(rec("/usaepay", "shorthand", store.StatusPending), "{}"), true)
	mustInsert(t, b, single(to("/sublytics", "a-other-source", store.StatusPending, "a"), "{}"), true)

	if got, err := b.Get(ctx, "/usaepay", "b3"); err != nil || dl(got).Destination != "b" {
		t.Fatalf("b3: %+v, %v", got, err)
	}

	want := map[string][]string{"a": {"a-other-source", "a-single"}, "b": {"b-single"}, "/usaepay": {"shorthand"}, "c": nil}
	for i := range 10 {
		want["a"] = append(want["a"], fmt.Sprint("a", i))
		want["b"] = append(want["b"], fmt.Sprint("b", i))
	}
	claimAll := func(s store.Store, dest string, now time.Time) []string {
		t.Helper()
		var ids []string
		for {
			got, err := s.Claim(ctx, "owner-"+dest, []string{dest}, now, time.Minute, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				slices.Sort(ids)
				return ids
			}
			for _, c := range got {
				if c.Destination != dest || leased(c).Destination != dest || len(c.Record.Deliveries) != 1 {
					t.Errorf("claim for %q returned %s %s of destination %q: %+v", dest, c.Record.Source, c.Record.ID, c.Destination, c.Record.Deliveries)
				}
				ids = append(ids, c.Record.ID)
			}
		}
	}
	for _, dest := range []string{"a", "b", "/usaepay", "c"} {
		slices.Sort(want[dest])
		if got := claimAll(b, dest, time.Now()); !slices.Equal(got, want[dest]) {
			t.Fatalf("claim for %q: %v, want %v", dest, got, want[dest])
		}
	}

	// A retry stays with its destination.
	retryAt := time.Now().Add(time.Second)
	if err := b.RecordAttempt(ctx, "/usaepay", "b3", "b", "owner-b", store.Attempt{Number: 1, At: time.Now(), Status: 503}, store.RetryAt(retryAt)); err != nil {
		t.Fatal(err)
	}
	// Every lease of the first round has run out two minutes on.
	later := time.Now().Add(2 * time.Minute)
	if got := claimAll(b, "a", later); !slices.Equal(got, want["a"]) {
		t.Fatalf("claim for a after b3's retry: %v", got)
	}

	// A replay sent to another destination names it and leaves the record
	// to its own.
	replay := store.Attempt{Number: 2, At: time.Now(), Status: 200, Replay: true, Destination: "a"}
	got, err := b.RecordReplay(ctx, "/usaepay", "b4", "b", replay, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || len(dl(got).Attempts) != 1 || dl(got).Attempts[0].Destination != "a" {
		t.Fatalf("b4 after a replay to a: status %s, attempts %+v", got.Status, dl(got).Attempts)
	}

	b = restart(t, b, reopen)
	if got, err := b.Get(ctx, "/usaepay", "b4"); err != nil || dl(got).Destination != "b" || len(dl(got).Attempts) != 1 || dl(got).Attempts[0].Destination != "a" {
		t.Fatalf("b4 after restart: %+v, %v", got, err)
	}
	later = later.Add(2 * time.Minute)
	for _, dest := range []string{"a", "b", "/usaepay"} {
		if got := claimAll(b, dest, later); !slices.Equal(got, want[dest]) {
			t.Fatalf("claim for %q after restart: %v, want %v", dest, got, want[dest])
		}
	}

	bad := to("/usaepay", "nul", store.StatusPending, "a\x00b")
	if _, err := b.Insert(ctx, single(bad, "{}"), false); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("a destination with a NUL byte: %v", err)
	}
}
