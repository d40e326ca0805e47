package ops_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

func newTarget(t testing.TB) ops.Target {
	t.Helper()
	db, err := badger.Open(t.TempDir(), badger.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return ops.Target{
		Name:  "test",
		Store: db,
		Replayer: func(destination string) (ops.Replayer, error) {
			return nil, fmt.Errorf("no loaded route delivers to destination %s with this store", destination)
		},
	}
}

// insert stores one event with a delivery to each of dests (its source
// when none is given), every one in status: pending, reserved (a sync
// delivery; only with one destination), or dead (claimed and given up on).
func insert(t *testing.T, tg ops.Target, source, id string, status store.Status, at time.Time, dests ...string) {
	t.Helper()
	if len(dests) == 0 {
		dests = []string{source}
	}
	rec := &store.Record{Source: source, ID: id, Provider: "usaepay", Type: "ach.settled", ReceivedAt: at,
		Event: []byte(`{"specversion":"1.0","id":"` + id + `","subject":"subj-` + id + `"}`)}
	for _, d := range dests {
		del := store.Delivery{Destination: d}
		if status == store.StatusReserved {
			del.Status = store.StatusReserved
		}
		rec.Deliveries = append(rec.Deliveries, del)
	}
	if _, err := tg.Store.Insert(context.Background(), &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, false); err != nil {
		t.Fatal(err)
	}
	if status == store.StatusDead {
		for _, d := range dests {
			kill(t, tg.Store, source, id, d)
		}
	}
}

// kill makes the delivery of source/id to destination dead, as an engine
// giving up on it would: claimed, then an attempt recorded as dead. The
// other deliveries it claims on the way are given back.
func kill(t testing.TB, db store.Store, source, id, destination string) {
	t.Helper()
	ctx := context.Background()
	far := time.Now().Add(24 * time.Hour)
	for {
		claimed, err := db.Claim(ctx, "test", []string{destination}, far, time.Minute, 1000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range claimed {
			if c.Record.Source == source && c.Record.ID == id {
				found = true
				err = db.RecordAttempt(ctx, source, id, destination, "test", store.Attempt{Number: 1, At: far, Status: 500, Error: "HTTP 500"}, store.Dead(store.DeadAttemptsExhausted))
			} else {
				err = db.ReleaseLease(ctx, c.Record.Source, c.Record.ID, c.Destination, "test")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if found {
			return
		}
		if len(claimed) == 0 {
			t.Fatalf("no delivery of %s %s to %s to claim", source, id, destination)
		}
	}
}

func TestErrorKindsKeepTheMessage(t *testing.T) {
	base := errors.New("status \"gone\": want one of ...")
	for kind, status := range map[error]int{ops.ErrInvalid: 400, ops.ErrNotFound: 404, ops.ErrNotReplayable: 409} {
		err := fmt.Errorf("outer: %w", ops.Mark(kind, base))
		if ops.HTTPStatus(err) != status || !errors.Is(err, base) || err.Error() != "outer: "+base.Error() {
			t.Errorf("%v: status %d, message %q", kind, ops.HTTPStatus(err), err)
		}
	}
	if ops.HTTPStatus(base) != http.StatusInternalServerError || ops.Mark(ops.ErrInvalid, nil) != nil {
		t.Error("an unmarked error is not a 500, or Mark(nil) is not nil")
	}
}

func TestFiltersRefuseWhatTheyCannotMean(t *testing.T) {
	for _, q := range []url.Values{{"status": {"gone"}}, {"from": {"monday"}}, {"cursor": {"%%"}}, {"limit": {"0"}}, {"limit": {"1001"}}} {
		if _, err := ops.QueryFilter(q); !errors.Is(err, ops.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", q, err)
		}
	}
	if _, _, err := ops.ActionFilter(nil, false); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("empty action filter without all: %v", err)
	}
	if f, limit, err := ops.ActionFilter(nil, true); err != nil || f != (store.Filter{}) || limit != 0 {
		t.Errorf("empty filter with all: %+v %d %v", f, limit, err)
	}
	if _, _, err := ops.ActionFilter(&ops.FilterRequest{Status: "dead", Limit: -1}, false); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("negative limit: %v", err)
	}
}

func TestCountBySourceSaysWhenItStoppedEarly(t *testing.T) {
	tg := newTarget(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		insert(t, tg, "/a", fmt.Sprint("a", i), store.StatusDead, at.Add(time.Duration(i)*time.Second))
	}
	for i := range 3 {
		insert(t, tg, "/b", fmt.Sprint("b", i), store.StatusPending, at.Add(time.Minute+time.Duration(i)*time.Second))
	}
	rows, scanned, complete, err := ops.CountBySource(context.Background(), tg, 100)
	if err != nil || !complete || scanned != 8 || len(rows) != 2 || rows[0].Source != "/a" || rows[0].Counts[store.StatusDead] != 5 || rows[1].Counts[store.StatusPending] != 3 {
		t.Fatalf("all: %+v %d %v %v", rows, scanned, complete, err)
	}
	// The newest 4: the three of /b and the newest of /a.
	rows, scanned, complete, err = ops.CountBySource(context.Background(), tg, 4)
	if err != nil || complete || scanned != 4 || rows[0].Total != 1 || rows[1].Total != 3 {
		t.Fatalf("newest 4: %+v %d %v %v", rows, scanned, complete, err)
	}
	// Exactly as many as there are: complete.
	if _, scanned, complete, _ = ops.CountBySource(context.Background(), tg, 8); !complete || scanned != 8 {
		t.Errorf("exactly 8: %d %v", scanned, complete)
	}
}

func TestListShowAndReplayClassifyTheirErrors(t *testing.T) {
	tg := newTarget(t)
	insert(t, tg, "/a", "x", store.StatusDead, time.Now())
	list, err := ops.List(context.Background(), tg, store.Filter{})
	if err != nil || len(list.Events) != 1 || list.Events[0].Subject != "subj-x" || list.Store != "test" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := ops.List(context.Background(), tg, store.Filter{Cursor: "AAAA"}); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("foreign cursor: %v", err)
	}
	if _, err := ops.Show(context.Background(), tg, "/a", "nope"); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("show unknown: %v", err)
	}
	if _, err := ops.Replay(context.Background(), tg, "/a", "x", "", "", true); !errors.Is(err, ops.ErrNotReplayable) {
		t.Errorf("replay without a route: %v", err)
	}
	if _, err := ops.ReplayMatching(context.Background(), tg, store.Filter{Source: "/a"}, "nowhere", 0, true); !errors.Is(err, ops.ErrNotReplayable) {
		t.Errorf("bulk replay to a destination without a route: %v", err)
	}
	res, err := ops.ReplayMatching(context.Background(), tg, store.Filter{Status: store.StatusDead}, "", 0, true)
	if err != nil || res.Matched != 1 || res.Skipped != 1 || res.Results[0].Error == "" {
		t.Errorf("bulk replay to a destination without a route: %+v %v", res, err)
	}
}

// namedReplayer answers every replay with the destination it stands for.
type namedReplayer string

func (n namedReplayer) Replay(_ context.Context, source, id, _ string, dryRun bool) (*delivery.ReplayResult, error) {
	return &delivery.ReplayResult{Source: source, ID: id, Destination: string(n), DryRun: dryRun}, nil
}

// TestReplayGoesToTheEventsDestination: a replay, by id or by filter, goes
// through the engine of the destination each event is bound to, or of the
// one the operator names; never by the event's source.
func TestReplayGoesToTheEventsDestination(t *testing.T) {
	tg := newTarget(t)
	tg.Replayer = func(destination string) (ops.Replayer, error) {
		if destination == "a" || destination == "b" {
			return namedReplayer(destination), nil
		}
		return nil, fmt.Errorf("no loaded route delivers to destination %s", destination)
	}
	at := time.Now().Add(-time.Hour)
	for i, dest := range []string{"a", "b", "a"} {
		insert(t, tg, "/usaepay", fmt.Sprint("e", i), store.StatusDead, at.Add(time.Duration(i)*time.Second), dest)
	}
	ctx := context.Background()
	list, err := ops.List(ctx, tg, store.Filter{})
	if err != nil || len(list.Events) != 3 || list.Events[1].ID != "e1" || list.Events[1].Deliveries[0].Destination != "b" {
		t.Fatalf("listing: %+v %v", list, err)
	}
	if res, err := ops.Replay(ctx, tg, "/usaepay", "e1", "", "", true); err != nil || res.Results[0].Destination != "b" {
		t.Fatalf("replay of e1 (bound to b): %+v %v", res, err)
	}
	if res, err := ops.Replay(ctx, tg, "/usaepay", "e1", "", "a", true); err != nil || res.Results[0].Destination != "a" {
		t.Fatalf("replay of e1 to a: %+v %v", res, err)
	}
	if _, err := ops.Replay(ctx, tg, "/usaepay", "e1", "a", "", true); !errors.Is(err, ops.ErrNotFound) {
		t.Fatalf("replay of e1's delivery to a, which it has not: %v", err)
	}
	res, err := ops.ReplayMatching(ctx, tg, store.Filter{Source: "/usaepay"}, "", 0, true)
	if err != nil || res.Matched != 3 {
		t.Fatalf("bulk replay: %+v %v", res, err)
	}
	for _, r := range res.Results {
		want := map[string]string{"e0": "a", "e1": "b", "e2": "a"}[r.ID]
		if r.Destination != want {
			t.Errorf("bulk replay sent %s to %q, want %q", r.ID, r.Destination, want)
		}
	}
	res, err = ops.ReplayMatching(ctx, tg, store.Filter{Source: "/usaepay"}, "b", 0, true)
	if err != nil || res.Matched != 3 {
		t.Fatalf("bulk replay to b: %+v %v", res, err)
	}
	for _, r := range res.Results {
		if r.Destination != "b" {
			t.Errorf("bulk replay to b sent %s to %q", r.ID, r.Destination)
		}
	}
	pv, err := ops.PreviewReplay(ctx, tg, store.Filter{Source: "/usaepay"}, "", 0, 3)
	if err != nil || pv.Sendable != 3 || len(pv.Requests) != 3 || pv.Requests[1].Destination != "b" {
		t.Fatalf("preview: %+v %v", pv, err)
	}
}

// countingStore counts what a caller reads from a store.
type countingStore struct {
	store.Store
	mu       sync.Mutex
	maxPage  int // the most records one List returned
	listed   int // records returned by List, in all
	gets     int
	replayed int // dry runs asked of countingStore.Replay
}

func (c *countingStore) List(ctx context.Context, f store.Filter) ([]*store.Record, string, error) {
	recs, next, err := c.Store.List(ctx, f)
	c.mu.Lock()
	c.maxPage = max(c.maxPage, len(recs))
	c.listed += len(recs)
	c.mu.Unlock()
	return recs, next, err
}

func (c *countingStore) Get(ctx context.Context, source, id string) (*store.Record, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Store.Get(ctx, source, id)
}

// Replay is a dry-run-only Replayer reading the event as the engine does.
func (c *countingStore) Replay(ctx context.Context, source, id, _ string, dryRun bool) (*delivery.ReplayResult, error) {
	if !dryRun {
		return nil, errors.New("a preview must not send")
	}
	c.mu.Lock()
	c.replayed++
	c.mu.Unlock()
	rec, err := c.Get(ctx, source, id)
	if err != nil {
		return nil, err
	}
	return &delivery.ReplayResult{Source: source, ID: id, DryRun: true, Body: rec.Event}, nil
}

// TestPreviewReplayPreparesOnlyTheFirst: a preview counts every matching
// event from the listing, a page at a time, and reads the bodies of the
// events it shows only.
func TestPreviewReplayPreparesOnlyTheFirst(t *testing.T) {
	tg := newTarget(t)
	cs := &countingStore{Store: tg.Store}
	tg.Store = cs
	// The events are bound to destinations named as their sources.
	tg.Replayer = func(destination string) (ops.Replayer, error) {
		if destination == "/a" {
			return cs, nil
		}
		return nil, fmt.Errorf("no async route delivers to %s", destination)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Oldest first: three of a source without a route, one reserved, then
	// 250 replayable ones.
	for i := range 3 {
		insert(t, tg, "/b", fmt.Sprint("b", i), store.StatusDead, at.Add(time.Duration(i)*time.Second))
	}
	insert(t, tg, "/a", "reserved", store.StatusReserved, at.Add(time.Minute))
	const n = 250
	for i := range n {
		insert(t, tg, "/a", fmt.Sprint("a", i), store.StatusDead, at.Add(time.Hour+time.Duration(i)*time.Second))
	}

	p, err := ops.PreviewReplay(context.Background(), tg, store.Filter{}, "", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Matched != n+4 || p.Sendable != n || p.Skipped != 3 || p.Failed != 1 || len(p.Requests) != 10 {
		t.Fatalf("preview: matched %d sendable %d skipped %d failed %d, %d requests", p.Matched, p.Sendable, p.Skipped, p.Failed, len(p.Requests))
	}
	if p.Requests[0].ID != fmt.Sprint("a", n-1) || len(p.Requests[0].Body) == 0 {
		t.Errorf("first request: %+v, want the newest event with its body", p.Requests[0])
	}
	if cs.replayed != 10 || cs.gets != 10 {
		t.Errorf("the preview prepared %d requests and read %d events, want the 10 shown", cs.replayed, cs.gets)
	}
	if cs.maxPage > store.DefaultListLimit || cs.listed != n+4 {
		t.Errorf("the preview listed %d records, up to %d at once; want each once, a page at a time", cs.listed, cs.maxPage)
	}

	// A limit bounds the events counted; the events shown come first.
	p, err = ops.PreviewReplay(context.Background(), tg, store.Filter{Source: "/a"}, "", 3, 10)
	if err != nil || p.Matched != 3 || p.Sendable != 3 || len(p.Requests) != 3 {
		t.Fatalf("limit 3: %+v %v", p, err)
	}
	// A named destination that cannot be replayed to fails up front, as
	// a replay would.
	if _, err := ops.PreviewReplay(context.Background(), tg, store.Filter{}, "/b", 0, 10); !errors.Is(err, ops.ErrNotReplayable) {
		t.Errorf("preview to a destination without a route: %v", err)
	}
}

func TestDeadReasonText(t *testing.T) {
	for r, want := range map[store.DeadReason]string{
		store.DeadGone:              "410 Gone",
		store.DeadAttemptsExhausted: "attempts are spent",
		store.DeadMaxAge:            "max_age",
		"newer_reason":              "newer_reason",
	} {
		if got := ops.DeadReasonText(r); !strings.Contains(got, want) {
			t.Errorf("DeadReasonText(%q) = %q, want it to say %q", r, got, want)
		}
	}
	if ops.DeadReasonText("") != "" {
		t.Error("no reason should read as nothing")
	}
}

// PurgeEvent deletes the one event and nothing else, even a neighbour
// received a nanosecond later or an item of the same batch.
func TestPurgeEvent(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	insert(t, tg, "/a", "x", store.StatusDead, at)
	insert(t, tg, "/a", "next", store.StatusDead, at.Add(time.Nanosecond))
	insert(t, tg, "/a", "before", store.StatusDead, at.Add(-time.Nanosecond))
	res, err := ops.PurgeEvent(ctx, tg, "/a", "x")
	if err != nil || res.Purged != 1 {
		t.Fatalf("purge x: %+v %v", res, err)
	}
	if _, err := tg.Store.Get(ctx, "/a", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("x is still there: %v", err)
	}
	for _, id := range []string{"next", "before"} {
		if _, err := tg.Store.Get(ctx, "/a", id); err != nil {
			t.Errorf("%s was purged with x: %v", id, err)
		}
	}
	if _, err := ops.PurgeEvent(ctx, tg, "/a", "x"); !errors.Is(err, ops.ErrNotFound) {
		t.Errorf("purge of a purged event: %v, want ErrNotFound", err)
	}

	// Three items of one batch: same source, type, status, subject and
	// time; the middle one goes alone.
	var batch []*store.Record
	for i := range 3 {
		batch = append(batch, &store.Record{Source: "/b", ID: fmt.Sprintf("i%d", i), Provider: "openloyalty", Type: "points.added",
			Subject: "cus_1", ReceivedAt: at, BatchIndex: i, BatchSize: 3, Deliveries: []store.Delivery{{Destination: "/b"}}})
	}
	if _, err := tg.Store.Insert(ctx, &store.Ingest{RawBody: []byte(`[{},{},{}]`), Records: batch}, false); err != nil {
		t.Fatal(err)
	}
	if res, err := ops.PurgeEvent(ctx, tg, "/b", "i1"); err != nil || res.Purged != 1 {
		t.Fatalf("purge of a batch item: %+v %v", res, err)
	}
	if _, err := tg.Store.Get(ctx, "/b", "i1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("i1 is still there: %v", err)
	}
	for _, id := range []string{"i0", "i2"} {
		if _, err := tg.Store.Get(ctx, "/b", id); err != nil {
			t.Errorf("%s was purged with i1: %v", id, err)
		}
	}
	if _, err := ops.PurgeEvent(ctx, tg, "", "i0"); !errors.Is(err, ops.ErrInvalid) || ops.HTTPStatus(err) != http.StatusBadRequest {
		t.Errorf("purge without a source: %v, want ErrInvalid", err)
	}
}

// A subject filter reaches the store from the query and from an action's
// filter; an id without a source is refused before any store is asked.
func TestSubjectFilter(t *testing.T) {
	ctx := context.Background()
	tg := newTarget(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, sub := range []string{"cus_1", "cus_2", "cus_1", ""} {
		r := &store.Record{Source: []string{"/a", "/b"}[i%2], ID: fmt.Sprint(i), Provider: "usaepay", Type: "t",
			Subject: sub, ReceivedAt: at.Add(time.Duration(i) * time.Second), Deliveries: []store.Delivery{{Destination: "d"}}}
		if _, err := tg.Store.Insert(ctx, &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{r}}, false); err != nil {
			t.Fatal(err)
		}
	}
	f, err := ops.QueryFilter(url.Values{"subject": {"cus_1"}})
	if err != nil || f.Subject != "cus_1" {
		t.Fatalf("query filter: %+v %v", f, err)
	}
	keys, err := ops.Matching(ctx, tg, f, 0)
	if err != nil || len(keys) != 2 || keys[0].ID != "2" || keys[1].ID != "0" {
		t.Fatalf("matching cus_1: %+v %v", keys, err)
	}
	if _, err := ops.QueryFilter(url.Values{"id": {"0"}}); !errors.Is(err, ops.ErrInvalid) {
		t.Errorf("id without source: %v, want ErrInvalid", err)
	}
	if f, err := ops.QueryFilter(url.Values{"id": {"0"}, "source": {"/a"}}); err != nil || f.ID != "0" || f.Source != "/a" {
		t.Errorf("id with source: %+v %v", f, err)
	}
	af, limit, err := ops.ActionFilter(&ops.FilterRequest{Subject: "cus_2"}, false)
	if err != nil || af.Subject != "cus_2" || limit != 0 {
		t.Fatalf("action filter: %+v %d %v", af, limit, err)
	}
	res, err := ops.Purge(ctx, tg, af, limit)
	if err != nil || res.Purged != 1 {
		t.Fatalf("purge cus_2: %+v %v", res, err)
	}
	if _, err := tg.Store.Get(ctx, "/b", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cus_2's event survived: %v", err)
	}
}
