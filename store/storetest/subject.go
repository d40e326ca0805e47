package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// subjects inserts, a minute apart from base, records of two sources and
// several statuses: every third about "cus_1", every third about "cus_2",
// the rest with no subject. It returns the ids about "cus_1", newest first.
func subjects(t *testing.T, b store.Store, base time.Time, n int) []string {
	t.Helper()
	statuses := []store.Status{store.StatusPending, store.StatusDead, store.StatusDelivered, store.StatusRetrying}
	var want []string
	for i := range n {
		source, provider := "/pay", "usaepay"
		if i%2 == 1 {
			source, provider = "/loyalty", "openloyalty"
		}
		r := rec(source, fmt.Sprintf("e%02d", i), statuses[i%len(statuses)])
		r.Provider = provider
		r.ReceivedAt = base.Add(time.Duration(i) * time.Minute)
		switch i % 3 {
		case 0:
			r.Subject = "cus_1"
			want = append(want, r.ID)
		case 1:
			r.Subject = "cus_2"
		}
		mustInsert(t, b, single(r, "{}"), false)
	}
	slices.Reverse(want)
	return want
}

func testSubjectListing(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	want := subjects(t, b, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), 24)
	// A reservation about the subject is listed with the stored records.
	r := rec("/pay", "held", store.StatusReserved)
	r.Subject = "cus_1"
	r.ReceivedAt = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	mustInsert(t, b, single(r, "{}"), false)
	want = append([]string{"held"}, want...)

	rs, cur, err := b.List(ctx, store.Filter{Subject: "cus_1"})
	if err != nil || cur != "" {
		t.Fatalf("list by subject: %q %v", cur, err)
	}
	if got := listIDs(rs); !slices.Equal(got, want) {
		t.Fatalf("list by subject: %v, want %v", got, want)
	}
	sources := map[string]bool{}
	for _, r := range rs {
		if r.Subject != "cus_1" {
			t.Fatalf("%s %s listed with subject %q", r.Source, r.ID, r.Subject)
		}
		sources[r.Source] = true
	}
	if len(sources) != 2 {
		t.Fatalf("subject listing spans sources %v, want both", sources)
	}
	// Subject with the other fields: each narrows the subject's records.
	checks := []struct {
		f    store.Filter
		want func(*store.Record) bool
	}{
		{store.Filter{Subject: "cus_1", Source: "/loyalty"}, func(r *store.Record) bool { return r.Source == "/loyalty" }},
		{store.Filter{Subject: "cus_1", Status: store.StatusDead}, func(r *store.Record) bool { return r.Status == store.StatusDead }},
		{store.Filter{Subject: "cus_1", Provider: "openloyalty"}, func(r *store.Record) bool { return r.Provider == "openloyalty" }},
		{store.Filter{Subject: "cus_1", From: time.Date(2026, 11, 22, 10, 6, 0, 0, time.UTC), To: time.Date(2026, 11, 22, 10, 18, 0, 0, time.UTC)},
			func(r *store.Record) bool { return r.ID >= "e06" && r.ID < "e18" && r.ID != "held" }},
	}
	for _, c := range checks {
		var exp []string
		for _, r := range rs {
			if c.want(r) {
				exp = append(exp, r.ID)
			}
		}
		got, _, err := b.List(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(exp) == 0 || !slices.Equal(listIDs(got), exp) {
			t.Fatalf("list %+v: %v, want %v", c.f, listIDs(got), exp)
		}
	}
	if rs, _, err := b.List(ctx, store.Filter{Subject: "cus_none"}); err != nil || len(rs) != 0 {
		t.Fatalf("unknown subject: %v %v", listIDs(rs), err)
	}
	// The subject survives a state change and is read back by Get.
	if _, err := b.RecordReplay(ctx, "/pay", "e00", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "/pay", "e00"); err != nil || got.Subject != "cus_1" {
		t.Fatalf("get after replay: %+v %v", got, err)
	}
	rs, _, err = b.List(ctx, store.Filter{Subject: "cus_1", Status: store.StatusDelivered})
	if err != nil || !slices.Contains(listIDs(rs), "e00") {
		t.Fatalf("replayed record not listed by subject and its new status: %v %v", listIDs(rs), err)
	}
	if _, _, err := b.List(ctx, store.Filter{Subject: "a\x00b"}); err == nil {
		t.Fatal("a subject with a NUL byte was accepted")
	}
}

func testSubjectPaging(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	want := subjects(t, b, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), 36)
	var paged []string
	f := store.Filter{Subject: "cus_1", Limit: 5}
	pages := 0
	for ; ; pages++ {
		rs, next, err := b.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, listIDs(rs)...)
		if next == "" {
			break
		}
		f.Cursor = next
		// A record about the subject inserted mid-paging is newer than
		// the cursor: it is not listed on later pages.
		if pages == 0 {
			r := rec("/pay", "late", store.StatusPending)
			r.Subject = "cus_1"
			r.ReceivedAt = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
			mustInsert(t, b, single(r, "{}"), false)
		}
	}
	if !slices.Equal(paged, want) || pages != 2 {
		t.Fatalf("paged by subject in %d pages: %v, want %v", pages+1, paged, want)
	}
}

func testSubjectPurge(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	want := subjects(t, b, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), 24)
	n, err := b.Purge(ctx, store.Filter{Subject: "cus_1", Status: store.StatusDead})
	if err != nil || n == 0 {
		t.Fatalf("purge by subject and status: %d %v", n, err)
	}
	left, _, _ := b.List(ctx, store.Filter{Subject: "cus_1"})
	if len(left) != len(want)-n {
		t.Fatalf("%d left of %d after purging %d", len(left), len(want), n)
	}
	for _, r := range left {
		if r.Status == store.StatusDead {
			t.Fatalf("dead %s survived the purge", r.ID)
		}
	}
	n, err = b.Purge(ctx, store.Filter{Subject: "cus_1"})
	if err != nil || n != len(left) {
		t.Fatalf("purge by subject: %d %v, want %d", n, err, len(left))
	}
	for _, id := range want {
		if _, err := b.Get(ctx, "/pay", id); !errors.Is(err, store.ErrNotFound) {
			if _, err2 := b.Get(ctx, "/loyalty", id); !errors.Is(err2, store.ErrNotFound) {
				t.Fatalf("%s survived the purge", id)
			}
		}
	}
	if rs, _, _ := b.List(ctx, store.Filter{Subject: "cus_1"}); len(rs) != 0 {
		t.Fatalf("purged records still listed by subject: %v", listIDs(rs))
	}
	// The other subjects and the records without one are untouched.
	if rs, _, _ := b.List(ctx, store.Filter{Subject: "cus_2"}); len(rs) != 8 {
		t.Fatalf("cus_2 has %d records after purging cus_1, want 8", len(rs))
	}
	if rs, _, _ := b.List(ctx, store.Filter{}); len(rs) != 16 {
		t.Fatalf("%d records after purging cus_1, want 16", len(rs))
	}
	// An id purged and inserted again is listed by its new subject only.
	r := rec("/pay", want[0], store.StatusPending)
	r.Subject = "cus_3"
	if res := mustInsert(t, b, single(r, "{}"), false); !res[0].Inserted {
		t.Fatal("purged id still a duplicate")
	}
	if rs, _, _ := b.List(ctx, store.Filter{Subject: "cus_1"}); len(rs) != 0 {
		t.Fatalf("re-inserted id listed under its old subject: %v", listIDs(rs))
	}
	if rs, _, _ := b.List(ctx, store.Filter{Subject: "cus_3"}); len(rs) != 1 {
		t.Fatalf("re-inserted id under its new subject: %v", listIDs(rs))
	}
}

func testIDSelectsOne(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	// A loyalty batch: three items alike in all but their ids.
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	in := &store.Ingest{RawBody: []byte(`[{},{},{}]`)}
	for i := range 3 {
		r := rec("/loyalty", fmt.Sprintf("req-1#%d", i), store.StatusDead)
		r.Subject, r.ReceivedAt, r.BatchIndex = "cus_1", at, i
		in.Records = append(in.Records, r)
	}
	mustInsert(t, b, in, false)
	// The same id under another source is another event.
	other := rec("/pay", "req-1#1", store.StatusDead)
	other.ReceivedAt = at
	mustInsert(t, b, single(other, "{}"), false)

	rs, cur, err := b.List(ctx, store.Filter{Source: "/loyalty", ID: "req-1#1"})
	if err != nil || cur != "" || !slices.Equal(listIDs(rs), []string{"req-1#1"}) || rs[0].Source != "/loyalty" {
		t.Fatalf("list by id: %v %q %v", listIDs(rs), cur, err)
	}
	if rs, _, err := b.List(ctx, store.Filter{Source: "/loyalty", ID: "req-1#1", Status: store.StatusPending}); err != nil || len(rs) != 0 {
		t.Fatalf("id with a status it does not have: %v %v", listIDs(rs), err)
	}
	if rs, _, err := b.List(ctx, store.Filter{Source: "/loyalty", ID: "nope"}); err != nil || len(rs) != 0 {
		t.Fatalf("unknown id: %v %v", listIDs(rs), err)
	}
	for _, f := range []store.Filter{{ID: "req-1#1"}, {ID: "req-1#1", Subject: "cus_1"}} {
		if _, _, err := b.List(ctx, f); !errors.Is(err, store.ErrIDWithoutSource) {
			t.Fatalf("list %+v: %v, want ErrIDWithoutSource", f, err)
		}
		if _, err := b.Purge(ctx, f); !errors.Is(err, store.ErrIDWithoutSource) {
			t.Fatalf("purge %+v: %v, want ErrIDWithoutSource", f, err)
		}
	}
	n, err := b.Purge(ctx, store.Filter{Source: "/loyalty", ID: "req-1#1"})
	if err != nil || n != 1 {
		t.Fatalf("purge by id: %d %v", n, err)
	}
	if _, err := b.Get(ctx, "/loyalty", "req-1#1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged item still there: %v", err)
	}
	for _, k := range [][2]string{{"/loyalty", "req-1#0"}, {"/loyalty", "req-1#2"}, {"/pay", "req-1#1"}} {
		if _, err := b.Get(ctx, k[0], k[1]); err != nil {
			t.Fatalf("%s %s went with the purged item: %v", k[0], k[1], err)
		}
	}
	if body, err := b.RawBody(ctx, "/loyalty", "req-1#2"); err != nil || string(body) != `[{},{},{}]` {
		t.Fatalf("batch body after purging one item: %q %v", body, err)
	}
	if n, err := b.Purge(ctx, store.Filter{Source: "/loyalty", ID: "req-1#1"}); err != nil || n != 0 {
		t.Fatalf("purging it again: %d %v", n, err)
	}
}
