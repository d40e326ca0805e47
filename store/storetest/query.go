package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func testListFiltersAndPaging(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range 25 {
		r := rec("/pay", fmt.Sprintf("p%02d", i), store.StatusPending)
		r.ReceivedAt = base.Add(time.Duration(i) * time.Minute)
		if i%5 == 0 {
			r.Status = store.StatusDead
			r.Type = "ach.failed"
		}
		mustInsert(t, b, single(r, "{}"), false)
	}
	for i := range 5 {
		r := rec("/sub", fmt.Sprintf("s%d", i), store.StatusPending)
		r.Provider = "sublytics"
		r.ReceivedAt = base.Add(time.Duration(i)*time.Minute + time.Second)
		mustInsert(t, b, single(r, "{}"), false)
	}

	all, cur, err := b.List(ctx, store.Filter{})
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
	f := store.Filter{Source: "/pay", Limit: 7}
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
		f    store.Filter
		want int
	}{
		{store.Filter{Status: store.StatusDead}, 5},
		{store.Filter{Provider: "sublytics"}, 5},
		{store.Filter{Type: "ach.failed", Source: "/pay"}, 5},
		{store.Filter{Source: "/sub", Status: store.StatusDead}, 0},
		{store.Filter{From: base.Add(20 * time.Minute)}, 5},                           // p20..p24
		{store.Filter{To: base.Add(2 * time.Minute)}, 4},                              // p00 p01 s0 s1
		{store.Filter{From: base.Add(time.Minute), To: base.Add(3 * time.Minute)}, 4}, // p01 s1 p02 s2
		{store.Filter{From: base.Add(time.Minute), To: base.Add(3 * time.Minute), Limit: 3}, 3},
	}
	for _, c := range cases {
		rs, _, err := b.List(ctx, c.f)
		if err != nil || len(rs) != c.want {
			t.Errorf("%+v: %v %v", c.f, listIDs(rs), err)
		}
	}
	// A filter that no record can match is refused rather than answered
	// with nothing: a reversed or empty time range, a source with a NUL.
	for _, f := range []store.Filter{
		{From: base.Add(3 * time.Minute), To: base.Add(time.Minute)},
		{From: base.Add(time.Minute), To: base.Add(time.Minute)},
		{Source: "/pay\x00"},
	} {
		if rs, _, err := b.List(ctx, f); err == nil {
			t.Errorf("List(%+v) = %v, want an error", f, listIDs(rs))
		}
		if n, err := b.Purge(ctx, f); err == nil {
			t.Errorf("Purge(%+v) deleted %d, want an error", f, n)
		}
	}
	for _, c := range []string{"!!", "AAAA"} {
		if _, _, err := b.List(ctx, store.Filter{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Fatalf("cursor %q: %v, want store.ErrInvalidCursor", c, err)
		}
	}
	// Limits: default 100, max 1000.
	in := &store.Ingest{RawBody: []byte("[]")}
	for i := range 1100 {
		in.Records = append(in.Records, rec("/bulk", fmt.Sprint(i), store.StatusPending))
	}
	mustInsert(t, b, in, false)
	if rs, next, _ := b.List(ctx, store.Filter{Source: "/bulk"}); len(rs) != 100 || next == "" {
		t.Fatalf("default page %d %q", len(rs), next)
	}
	if rs, _, _ := b.List(ctx, store.Filter{Source: "/bulk", Limit: 5000}); len(rs) != 1000 {
		t.Fatalf("max page %d", len(rs))
	}
}

func testCountsAndPurge(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	ctx := context.Background()
	for i, st := range []store.Status{store.StatusPending, store.StatusPending, store.StatusDead, store.StatusDead, store.StatusDead, store.StatusReserved} {
		mustInsert(t, b, single(rec("/pay", fmt.Sprint(i), st), "{}"), false)
	}
	if _, err := b.RecordReplay(ctx, "/pay", "0", "/pay", store.Attempt{Number: 1, At: time.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	c, err := b.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.Status]int{store.StatusPending: 1, store.StatusDelivered: 1, store.StatusDead: 3, store.StatusReserved: 1, store.StatusRetrying: 0}
	for s, n := range want {
		if c[s] != n {
			t.Fatalf("counts %v, want %v", c, want)
		}
	}
	// Purged keys must not linger in the dedup cache.
	if res := mustInsert(t, b, single(rec("/pay", "2", store.StatusPending), "{}"), false); res[0].Inserted {
		t.Fatal("dead record not a duplicate")
	}
	n, err := b.Purge(ctx, store.Filter{Status: store.StatusDead, Limit: 2})
	if err != nil || n != 2 {
		t.Fatalf("limited purge: %d %v", n, err)
	}
	n, err = b.Purge(ctx, store.Filter{Status: store.StatusDead})
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	for _, id := range []string{"2", "3", "4"} {
		if _, err := b.Get(ctx, "/pay", id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s survived purge: %v", id, err)
		}
	}
	if res := mustInsert(t, b, single(rec("/pay", "2", store.StatusPending), "{}"), false); !res[0].Inserted {
		t.Fatal("purged key still a duplicate (stale cache)")
	}
	c, _ = b.Counts(ctx)
	if c[store.StatusDead] != 0 || c[store.StatusPending] != 2 {
		t.Fatalf("counts after purge %v", c)
	}
	if rs, _, _ := b.List(ctx, store.Filter{Status: store.StatusDead}); len(rs) != 0 {
		t.Fatal("purged records still listed")
	}
	// Purged pending records leave the due index too.
	if n, _ := b.Purge(ctx, store.Filter{}); n != 4 {
		t.Fatalf("purge all: %d", n)
	}
	if cl, _ := b.Claim(ctx, "w", []string{"/pay"}, time.Now(), time.Minute, 10); len(cl) != 0 {
		t.Fatalf("claimed purged records: %v", claimedIDs(cl))
	}
}
