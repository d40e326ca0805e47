package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestClaimExclusiveTwoOwners(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	const n = 300
	in := &Ingest{RawBody: []byte("[]")}
	for i := range n {
		in.Records = append(in.Records, rec("/pay", fmt.Sprint("c", i), StatusPending))
	}
	// Records of another source and not-yet-due ones must not be claimed.
	other := rec("/other", "o1", StatusPending)
	later := rec("/pay", "later", StatusRetrying)
	later.NextAttemptAt = time.Now().Add(time.Hour)
	in.Records = append(in.Records, other, later)
	mustInsert(t, b, in, false)

	var mu sync.Mutex
	owners := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("config-", w%2)
			for {
				got, err := b.Claim(ctx, owner, []string{"/pay"}, time.Now(), time.Minute, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					if r.LeaseOwner != owner || !r.LeaseUntil.After(time.Now()) {
						t.Errorf("%s: lease %q until %v", r.ID, r.LeaseOwner, r.LeaseUntil)
					}
					if prev, dup := owners[r.ID]; dup {
						t.Errorf("%s claimed by %s and %s", r.ID, prev, owner)
					}
					owners[r.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owners) != n {
		t.Fatalf("claimed %d records, want %d", len(owners), n)
	}
	if _, ok := owners["later"]; ok {
		t.Fatal("claimed a record not yet due")
	}
	got, _ := b.Get(ctx, "/pay", "c17")
	if got.LeaseOwner != owners["c17"] {
		t.Fatalf("stored lease owner %q, claimed by %q", got.LeaseOwner, owners["c17"])
	}
	// Once due, the later record is claimable.
	res, err := b.Claim(ctx, "x", []string{"/pay", "/other"}, time.Now().Add(2*time.Hour), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range res {
		ids[r.ID] = true
	}
	// Leases of the first round (1 min) have expired 2 hours from now too,
	// so "later", "o1" and 8 of the expired leases come back, oldest due first.
	if !ids["o1"] || len(res) != 10 {
		t.Fatalf("claim across sources: %v", ids)
	}
}

func TestClaimLeaseExpiryAndRelease(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "l1", StatusPending), "{}"), true)
	now := time.Now()
	got, err := b.Claim(ctx, "a", []string{"/pay"}, now, 30*time.Second, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("first claim: %v %v", got, err)
	}
	if again, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(10*time.Second), 30*time.Second, 10); len(again) != 0 {
		t.Fatalf("claimed while leased: %v", again)
	}
	// Owner a died (kill -9): after the lease, b may take it.
	again, err := b.Claim(ctx, "b", []string{"/pay"}, now.Add(31*time.Second), 30*time.Second, 10)
	if err != nil || len(again) != 1 || again[0].LeaseOwner != "b" {
		t.Fatalf("reclaim after lease expiry: %v %v", again, err)
	}
	// A failed attempt: retry in 5s, lease given back.
	if err := b.RecordAttempt(ctx, "/pay", "l1", "b", Attempt{Number: 1, At: now, Status: 503}, RetryAt(now.Add(5*time.Second))); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(4*time.Second), time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed before NextAttemptAt")
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 1 {
		t.Fatal("not claimable at NextAttemptAt")
	}
	// A lease given back makes the record claimable at once; one held by
	// another owner is not given back.
	if err := b.ReleaseLease(ctx, "/pay", "l1", "b"); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 0 {
		t.Fatal("a lease was given back by an owner that did not hold it")
	}
	if err := b.ReleaseLease(ctx, "/pay", "l1", "a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(6*time.Second), time.Minute, 10); len(c) != 1 {
		t.Fatal("not claimable after its lease was given back")
	}
	// Delivered and dead records leave the due index.
	if err := b.RecordAttempt(ctx, "/pay", "l1", "b", Attempt{Number: 2, At: now, Status: 410}, Dead(DeadGone)); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Get(ctx, "/pay", "l1"); got.Status != StatusDead || got.DeadReason != DeadGone || !got.NextAttemptAt.IsZero() || got.LeaseOwner != "" {
		t.Fatalf("dead record %+v", got)
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now.Add(time.Hour), time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed a dead record")
	}
	if _, err := b.Claim(ctx, "", []string{"/pay"}, now, time.Minute, 1); err == nil {
		t.Fatal("empty owner accepted")
	}
}

func TestClaimResumesAfterReopen(t *testing.T) {
	b, dir := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "r", StatusPending), "{}"), true)
	if c, _ := b.Claim(ctx, "old", []string{"/pay"}, time.Now(), time.Hour, 1); len(c) != 1 {
		t.Fatal("claim")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	// Leases die with the process that held them: the claimed event is
	// due again at once, not an hour later.
	if got, err := b2.Get(ctx, "/pay", "r"); err != nil || got.LeaseOwner != "" || !got.LeaseUntil.IsZero() {
		t.Fatalf("lease persisted: %+v %v", got, err)
	}
	c, err := b2.Claim(ctx, "new", []string{"/pay"}, time.Now(), time.Minute, 1)
	if err != nil || len(c) != 1 || c[0].ID != "r" {
		t.Fatalf("pending work after restart: %v %v", c, err)
	}
}

func TestLateAttemptKeepsTakenOverLease(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	mustInsert(t, b, single(rec("/pay", "slow", StatusPending), "{}"), true)
	now := time.Now()
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Second, 1); len(c) != 1 {
		t.Fatal("claim by a")
	}
	if c, _ := b.Claim(ctx, "b", []string{"/pay"}, now.Add(2*time.Second), time.Hour, 1); len(c) != 1 {
		t.Fatal("claim by b after a's lease ran out")
	}
	// a comes back late and records its attempt: the attempt is history,
	// the state and the lease stay b's.
	err := b.RecordAttempt(ctx, "/pay", "slow", "a", Attempt{Number: 1, At: now, Status: 500}, Dead(DeadAttemptsExhausted))
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("late attempt: %v", err)
	}
	if c, _ := b.Claim(ctx, "c", []string{"/pay"}, now.Add(3*time.Second), time.Hour, 1); len(c) != 0 {
		t.Fatal("claimed while b holds the lease")
	}
	got, err := b.Get(ctx, "/pay", "slow")
	if err != nil || got.LeaseOwner != "b" || len(got.Attempts) != 1 || got.Status != StatusPending {
		t.Fatalf("after the late attempt: %+v %v", got, err)
	}
	if n, err := b.Purge(ctx, Filter{Source: "/pay"}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if b.leases.held(string(recordKey("/pay", "slow")), now) {
		t.Fatal("purge left the lease behind")
	}
}

func listIDs(rs []*Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestListFiltersAndPaging(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		r := rec("/pay", fmt.Sprintf("p%02d", i), StatusPending)
		r.ReceivedAt = base.Add(time.Duration(i) * time.Minute)
		if i%5 == 0 {
			r.Status = StatusDead
			r.Type = "ach.failed"
		}
		mustInsert(t, b, single(r, "{}"), false)
	}
	for i := range 5 {
		r := rec("/sub", fmt.Sprintf("s%d", i), StatusPending)
		r.Provider = "sublytics"
		r.ReceivedAt = base.Add(time.Duration(i)*time.Minute + time.Second)
		mustInsert(t, b, single(r, "{}"), false)
	}

	all, cur, err := b.List(ctx, Filter{})
	if err != nil || cur != "" || len(all) != 30 {
		t.Fatalf("list all: %d %q %v", len(all), cur, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ReceivedAt.After(all[i-1].ReceivedAt) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	if all[0].ID != "p24" {
		t.Fatalf("newest is %s", all[0].ID)
	}

	// Paging through one source yields each record once, in order.
	var paged []string
	f := Filter{Source: "/pay", Limit: 7}
	for pages := 0; ; pages++ {
		rs, next, err := b.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, listIDs(rs)...)
		if next == "" {
			if pages != 3 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		f.Cursor = next
	}
	if len(paged) != 25 || paged[0] != "p24" || paged[24] != "p00" {
		t.Fatalf("paged %v", paged)
	}

	cases := []struct {
		f    Filter
		want int
	}{
		{Filter{Status: StatusDead}, 5},
		{Filter{Provider: "sublytics"}, 5},
		{Filter{Type: "ach.failed", Source: "/pay"}, 5},
		{Filter{Source: "/sub", Status: StatusDead}, 0},
		{Filter{From: base.Add(20 * time.Minute)}, 5},                           // p20..p24
		{Filter{To: base.Add(2 * time.Minute)}, 4},                              // p00 p01 s0 s1
		{Filter{From: base.Add(time.Minute), To: base.Add(3 * time.Minute)}, 4}, // p01 s1 p02 s2
		{Filter{From: base.Add(time.Minute), To: base.Add(3 * time.Minute), Limit: 3}, 3},
	}
	for _, c := range cases {
		rs, _, err := b.List(ctx, c.f)
		if err != nil || len(rs) != c.want {
			t.Errorf("%+v: %v %v", c.f, listIDs(rs), err)
		}
	}
	for _, c := range []string{"!!", "AAAA"} {
		if _, _, err := b.List(ctx, Filter{Cursor: c}); !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
	// Limits: default 100, max 1000.
	in := &Ingest{RawBody: []byte("[]")}
	for i := range 1100 {
		in.Records = append(in.Records, rec("/bulk", fmt.Sprint(i), StatusPending))
	}
	mustInsert(t, b, in, false)
	if rs, next, _ := b.List(ctx, Filter{Source: "/bulk"}); len(rs) != 100 || next == "" {
		t.Fatalf("default page %d %q", len(rs), next)
	}
	if rs, _, _ := b.List(ctx, Filter{Source: "/bulk", Limit: 5000}); len(rs) != 1000 {
		t.Fatalf("max page %d", len(rs))
	}
}

func TestCountsAndPurge(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	for i, st := range []Status{StatusPending, StatusPending, StatusDead, StatusDead, StatusDead, StatusReserved} {
		mustInsert(t, b, single(rec("/pay", fmt.Sprint(i), st), "{}"), false)
	}
	if _, err := b.RecordReplay(ctx, "/pay", "0", Attempt{Number: 1, At: time.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	c, err := b.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Status]int{StatusPending: 1, StatusDelivered: 1, StatusDead: 3, StatusReserved: 1, StatusRetrying: 0}
	for s, n := range want {
		if c[s] != n {
			t.Fatalf("counts %v, want %v", c, want)
		}
	}
	// Purged keys must not linger in the dedup cache.
	if res := mustInsert(t, b, single(rec("/pay", "2", StatusPending), "{}"), false); res[0].Inserted {
		t.Fatal("dead record not a duplicate")
	}
	n, err := b.Purge(ctx, Filter{Status: StatusDead, Limit: 2})
	if err != nil || n != 2 {
		t.Fatalf("limited purge: %d %v", n, err)
	}
	n, err = b.Purge(ctx, Filter{Status: StatusDead})
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	for _, id := range []string{"2", "3", "4"} {
		if _, err := b.Get(ctx, "/pay", id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s survived purge: %v", id, err)
		}
	}
	if res := mustInsert(t, b, single(rec("/pay", "2", StatusPending), "{}"), false); !res[0].Inserted {
		t.Fatal("purged key still a duplicate (stale cache)")
	}
	c, _ = b.Counts(ctx)
	if c[StatusDead] != 0 || c[StatusPending] != 2 {
		t.Fatalf("counts after purge %v", c)
	}
	if rs, _, _ := b.List(ctx, Filter{Status: StatusDead}); len(rs) != 0 {
		t.Fatal("purged records still listed")
	}
	// Purged pending records leave the due index too.
	if n, _ := b.Purge(ctx, Filter{}); n != 4 {
		t.Fatalf("purge all: %d", n)
	}
	if cl, _ := b.Claim(ctx, "w", []string{"/pay"}, time.Now(), time.Minute, 10); len(cl) != 0 {
		t.Fatalf("claimed purged records: %v", listIDs(cl))
	}
}

func TestBodySweep(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	b.bodyGrace = 0
	mk := func(prefix string) *Ingest {
		in := &Ingest{RawBody: []byte(`{"data":[1,2,3]}`)}
		for i := range 3 {
			in.Records = append(in.Records, rec("/loyalty", fmt.Sprint(prefix, i), StatusPending))
		}
		return in
	}
	mustInsert(t, b, mk("keep"), false)
	mustInsert(t, b, mk("drop"), false)
	// A batch whose records are all duplicates writes no body.
	mustInsert(t, b, mk("drop"), false)
	if n, err := b.SweepBodies(ctx); err != nil || n != 0 {
		t.Fatalf("sweep with live records: %d %v", n, err)
	}
	if n, _ := b.Purge(ctx, Filter{Source: "/loyalty", Type: "transaction.sale.success", From: time.Now().Add(-time.Hour)}); n != 6 {
		// both batches match; keep one by re-inserting below
		t.Fatalf("purged %d", n)
	}
	mustInsert(t, b, mk("keep"), false)
	n, err := b.SweepBodies(ctx)
	if err != nil || n != 2 {
		t.Fatalf("sweep after purge: %d %v", n, err)
	}
	if body, err := b.RawBody(ctx, "/loyalty", "keep1"); err != nil || string(body) != `{"data":[1,2,3]}` {
		t.Fatalf("live body: %q %v", body, err)
	}
	b.bodyGrace = time.Hour
	if n, _ := b.Purge(ctx, Filter{}); n != 3 {
		t.Fatal("purge")
	}
	if n, _ := b.SweepBodies(ctx); n != 0 {
		t.Fatal("swept a young body")
	}
}

func TestClaimFindsEntriesBelowTheScanMark(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	now := time.Now()
	first := rec("/pay", "first", StatusPending)
	first.NextAttemptAt = now
	mustInsert(t, b, single(first, "{}"), true)
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 1 {
		t.Fatal("claim first")
	}
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 0 {
		t.Fatal("claimed a leased record")
	}
	// A record due earlier than anything the scans have seen, as a replay
	// or a clock step back could write: the write lowers the mark.
	early := rec("/pay", "early", StatusPending)
	early.NextAttemptAt = now.Add(-time.Hour)
	mustInsert(t, b, single(early, "{}"), true)
	if c, _ := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10); len(c) != 1 || c[0].ID != "early" {
		t.Fatalf("early record not claimed: %v", listIDs(c))
	}

	// A mark that is wrong (a write that raced a scan) only delays: the
	// periodic scan from the start finds what lies below it.
	stranded := rec("/pay", "stranded", StatusPending)
	stranded.NextAttemptAt = now.Add(-2 * time.Hour)
	mustInsert(t, b, single(stranded, "{}"), true)
	b.due.mu.Lock()
	b.due.mark("/pay").low = now
	b.due.mark("/pay").wrote = false
	b.due.mu.Unlock()
	deadline := time.Now().Add(3 * dueFullScanEvery)
	for {
		c, err := b.Claim(ctx, "a", []string{"/pay"}, now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) == 1 && c[0].ID == "stranded" {
			break
		}
		if len(c) != 0 || time.Now().After(deadline) {
			t.Fatalf("stranded record: claimed %v", listIDs(c))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two scans that overlap (two engines during a reload) must each learn of a
// write made while either ran.
func TestDueMarkOverlappingScans(t *testing.T) {
	d := newDueMarks()
	t0 := time.Now()
	d.begin("/pay", t0) // the first scan is a full one
	d.scanned("/pay", t0, true)
	a := d.begin("/pay", t0)
	d.wrote("/pay", t0.Add(time.Second))
	b := d.begin("/pay", t0)
	d.scanned("/pay", t0.Add(time.Hour), true) // b's snapshot saw a later entry only
	d.scanned("/pay", t0.Add(time.Hour), true) // so did a's, taken before the write
	if !a.Equal(t0) || !b.Equal(t0) {
		t.Fatalf("scans began at %v and %v, want the mark %v", a, b, t0)
	}
	if got := d.begin("/pay", t0); got.After(t0.Add(time.Second)) {
		t.Fatalf("mark %v passed the entry written at %v", got, t0.Add(time.Second))
	}
}

// A record that cannot be read is skipped; the other due events of its
// source are still handed out.
func TestClaimSkipsAnUnreadableRecord(t *testing.T) {
	b, _ := openTest(t, Options{})
	ctx := context.Background()
	now := time.Now()
	for i, id := range []string{"broken", "ok"} {
		r := rec("/pay", id, StatusPending)
		r.NextAttemptAt = now.Add(time.Duration(i) * time.Millisecond)
		mustInsert(t, b, single(r, "{}"), false)
	}
	if err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(payloadKey(recordKey("/pay", "broken")))
	}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Claim(ctx, "a", []string{"/pay"}, now.Add(time.Second), time.Minute, 10)
	if err != nil || len(c) != 1 || c[0].ID != "ok" {
		t.Fatalf("claim: %v %v", listIDs(c), err)
	}
	if b.leases.held(string(recordKey("/pay", "broken")), now) {
		t.Fatal("the unreadable record kept its lease")
	}
}
