package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// traced gives r the trace context of an ingest span of its own.
func traced(r *store.Record, n int) *store.Record {
	r.TraceParent = fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e47%02x-00f067aa0ba902%02x-01", n, n)
	r.TraceState = fmt.Sprintf("vendor=v%d,other=o%d", n, n)
	return r
}

// testTraceContextRoundTrips stores the trace context by every insert path
// an engine may have (a single event, a batch, a dedup key, an insert over
// a released record) and reads it back by Get, List and Claim, after a
// restart too: a delivery attempt made hours later, perhaps by another
// process, must find the trace of the request that brought its event.
func testTraceContextRoundTrips(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()

	mustInsert(t, b, single(traced(rec("/pay", "single", store.StatusPending), 1), "{}"), true)
	mustInsert(t, b, &store.Ingest{RawBody: []byte("[]"), Records: []*store.Record{
		traced(rec("/pay", "batch-0", store.StatusPending), 2),
		traced(rec("/pay", "batch-1", store.StatusPending), 3),
	}}, true)
	mustInsert(t, b, single(traced(keyed("keyed", "k1", time.Hour, store.StatusPending), 4), "{}"), true)
	release(t, b, traced(rec("/pay", "released", store.StatusReserved), 5), 503)
	mustInsert(t, b, single(traced(rec("/pay", "released", store.StatusPending), 6), "{}"), true)
	mustInsert(t, b, single(rec("/pay", "untraced", store.StatusPending), "{}"), true)

	want := map[string]int{"single": 1, "batch-0": 2, "batch-1": 3, "keyed": 4, "released": 6, "untraced": 0}
	check := func(how string, r *store.Record) {
		t.Helper()
		n, ok := want[r.ID]
		if !ok {
			return
		}
		w := &store.Record{}
		if n > 0 {
			traced(w, n)
		}
		if r.TraceParent != w.TraceParent || r.TraceState != w.TraceState {
			t.Errorf("%s %s: trace context %q %q, want %q %q", how, r.ID, r.TraceParent, r.TraceState, w.TraceParent, w.TraceState)
		}
	}
	checkAll := func(s store.Store, when string) {
		t.Helper()
		for id := range want {
			source := "/pay"
			if id == "keyed" {
				source = "/loyalty"
			}
			r, err := s.Get(ctx, source, id)
			if err != nil {
				t.Fatalf("%s: get %s: %v", when, id, err)
			}
			check(when+": get", r)
		}
		rs, _, err := s.List(ctx, store.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(want) {
			t.Fatalf("%s: listed %d records, want %d", when, len(rs), len(want))
		}
		for _, r := range rs {
			check(when+": list", r)
		}
	}
	checkAll(b, "stored")
	b = restart(t, b, reopen)
	defer b.Close()
	checkAll(b, "after a restart")

	claimed, err := b.Claim(ctx, "owner", []string{"/pay", "/loyalty"}, time.Now().Add(time.Minute), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != len(want) {
		t.Fatalf("claimed %d records, want %d", len(claimed), len(want))
	}
	for _, c := range claimed {
		check("claim", c.Record)
	}
}
