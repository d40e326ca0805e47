package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ordered is the ordered destination of the lane tests.
const ordered = "ordered"

// laned is a pending record with one delivery, to the ordered destination,
// in lane.
func laned(id, lane string) *store.Record {
	r := to("/pay", id, store.StatusPending, ordered)
	r.Deliveries[0].Lane = lane
	r.Subject = lane
	return r
}

// seqOf is the sequence of (source, id)'s delivery to destination as
// stored.
func seqOf(t *testing.T, s store.Store, id, destination string) uint64 {
	t.Helper()
	got, err := s.Get(context.Background(), "/pay", id)
	if err != nil {
		t.Fatal(err)
	}
	d := got.Delivery(destination)
	if d == nil {
		t.Fatalf("%s has no delivery to %s", id, destination)
	}
	return d.Sequence
}

// testLaneSequences: Insert numbers each lane's deliveries from 1 in the
// order it stores them, per (destination, lane), and hands the numbers
// back on the caller's records; a held delivery is numbered when
// MarkDelivered makes it pending; the numbers go on after a restart.
func testLaneSequences(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	batch := &store.Ingest{RawBody: []byte("[]"), Records: []*store.Record{
		laned("a", "t1"), laned("b", "t2"), laned("c", "t1"), to("/pay", "d", store.StatusPending, ordered),
	}}
	mustInsert(t, b, batch, true)
	e := laned("e", "t1")
	mustInsert(t, b, single(e, "{}"), true)
	// Two destinations, one ordered; a lane of the same name at another
	// destination is another lane.
	two := to("/pay", "two", store.StatusPending, ordered, "plain")
	two.Deliveries[0].Lane = "t1"
	other := to("/pay", "other", store.StatusPending, "elsewhere")
	other.Deliveries[0].Lane = "t1"
	mustInsert(t, b, &store.Ingest{RawBody: []byte("[]"), Records: []*store.Record{two, other}}, true)

	want := map[string]uint64{"a": 1, "b": 1, "c": 2, "d": 0, "e": 3}
	for _, r := range append(batch.Records, e) {
		if got := r.Deliveries[0].Sequence; got != want[r.ID] {
			t.Errorf("Insert gave %s sequence %d, want %d", r.ID, got, want[r.ID])
		}
		if got := seqOf(t, b, r.ID, ordered); got != want[r.ID] {
			t.Errorf("%s stored with sequence %d, want %d", r.ID, got, want[r.ID])
		}
	}
	if two.Deliveries[0].Sequence != 4 || seqOf(t, b, "two", ordered) != 4 || seqOf(t, b, "two", "plain") != 0 {
		t.Errorf("two: sequences %d and %d, want 4 and 0", seqOf(t, b, "two", ordered), seqOf(t, b, "two", "plain"))
	}
	if seqOf(t, b, "other", "elsewhere") != 1 {
		t.Errorf("lane t1 of another destination: sequence %d, want 1", seqOf(t, b, "other", "elsewhere"))
	}

	// A sync route's ordered destination: held, unnumbered, until the
	// event is accepted.
	syncRec := to("/pay", "sync", store.StatusReserved, "backend", ordered)
	syncRec.Deliveries[1].Lane = "t1"
	mustInsert(t, b, single(syncRec, "{}"), false)
	if syncRec.Deliveries[1].Sequence != 0 || seqOf(t, b, "sync", ordered) != 0 {
		t.Fatalf("a held delivery was numbered: %d", seqOf(t, b, "sync", ordered))
	}
	mustInsert(t, b, single(laned("f", "t1"), "{}"), true)
	if err := b.MarkDelivered(ctx, "/pay", "sync", store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(t, b, "f", ordered); got != 5 {
		t.Fatalf("f: sequence %d, want 5", got)
	}
	if got := seqOf(t, b, "sync", ordered); got != 6 {
		t.Fatalf("the held delivery made pending: sequence %d, want 6", got)
	}

	// A duplicate is not numbered again; the numbers go on across a
	// restart.
	dup := laned("e", "t1")
	if res := mustInsert(t, b, single(dup, "{}"), true); res[0].Inserted {
		t.Fatal("duplicate inserted")
	}
	if seqOf(t, b, "e", ordered) != 3 {
		t.Fatal("a duplicate renumbered the stored delivery")
	}
	b = restart(t, b, reopen)
	g := laned("g", "t1")
	mustInsert(t, b, single(g, "{}"), true)
	if got := seqOf(t, b, "g", ordered); got <= 6 || got != g.Deliveries[0].Sequence {
		t.Fatalf("after a restart: sequence %d (caller's %d), want one after 6", got, g.Deliveries[0].Sequence)
	}

	bad := to("/pay", "bad", store.StatusReserved, "backend")
	bad.Deliveries[0].Lane = "t1"
	if _, err := b.Insert(ctx, single(bad, "{}"), false); err == nil {
		t.Fatal("a reserved delivery with a lane was inserted")
	}
}

// testLaneSequencesConcurrent: concurrent inserts into the same lanes get
// distinct numbers, increasing in each inserter's order.
func testLaneSequencesConcurrent(t *testing.T, open Open) {
	b := openStore(t, open, Options{})
	const inserters, perInserter, lanes = 8, 24, 3
	type ins struct {
		inserter, n int
		seq         uint64
	}
	var mu sync.Mutex
	byLane := map[string][]ins{}
	var wg sync.WaitGroup
	for w := range inserters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perInserter; {
				// Singles (which an engine may gather into one
				// transaction with others) and batches of three.
				size := 1 + 2*(n%2)
				in := &store.Ingest{RawBody: []byte("[]")}
				for j := range size {
					in.Records = append(in.Records, laned(fmt.Sprintf("w%d-%d", w, n+j), fmt.Sprint("lane-", (n+j)%lanes)))
				}
				if _, err := b.Insert(context.Background(), in, n%4 == 0); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, r := range in.Records {
					lane := r.Deliveries[0].Lane
					byLane[lane] = append(byLane[lane], ins{w, n + j, r.Deliveries[0].Sequence})
				}
				mu.Unlock()
				n += size
			}
		}()
	}
	wg.Wait()
	for lane, list := range byLane {
		seen := map[uint64]bool{}
		last := map[int]uint64{}
		for _, e := range list {
			if e.seq == 0 || seen[e.seq] {
				t.Fatalf("%s: sequence %d given twice or zero", lane, e.seq)
			}
			seen[e.seq] = true
			if e.seq <= last[e.inserter] {
				t.Fatalf("%s: inserter %d got %d after %d", lane, e.inserter, e.seq, last[e.inserter])
			}
			last[e.inserter] = e.seq
		}
	}
}

// testLaneHeadOnly: Claim hands out a lane's head only, and only while no
// lease is on it; the next delivery of the lane comes once the head is
// delivered; other lanes and unordered deliveries go on meanwhile.
func testLaneHeadOnly(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	in := &store.Ingest{RawBody: []byte("[]"), Records: []*store.Record{
		laned("t1-1", "t1"), laned("t1-2", "t1"), laned("t2-1", "t2"), laned("t1-3", "t1"),
		to("/pay", "free", store.StatusPending, ordered),
	}}
	mustInsert(t, b, in, true)
	now := time.Now()
	claimSet := func(owner string, at time.Time) []string {
		t.Helper()
		got, err := b.Claim(ctx, owner, []string{ordered}, at, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		ids := listIDs(func() (rs []*store.Record) {
			for _, c := range got {
				rs = append(rs, c.Record)
			}
			return rs
		}())
		slices.Sort(ids)
		return ids
	}
	if got := claimSet("w1", now); !slices.Equal(got, []string{"free", "t1-1", "t2-1"}) {
		t.Fatalf("first claim: %v, want the heads and the unordered one", got)
	}
	if got := claimSet("w2", now); len(got) != 0 {
		t.Fatalf("claimed behind leased heads: %v", got)
	}
	// A retry keeps its place at the head.
	if err := b.RecordAttempt(ctx, "/pay", "t1-1", ordered, "w1", store.Attempt{Number: 1, At: now, Status: 503}, store.RetryAt(now)); err != nil {
		t.Fatal(err)
	}
	if got := claimSet("w2", now); !slices.Equal(got, []string{"t1-1"}) {
		t.Fatalf("after the head's failed attempt: %v", got)
	}
	// A lease given back or run out makes the head claimable again, and
	// still not what is behind it.
	if err := b.ReleaseLease(ctx, "/pay", "t1-1", ordered, "w2"); err != nil {
		t.Fatal(err)
	}
	if got := claimSet("w3", now); !slices.Equal(got, []string{"t1-1"}) {
		t.Fatalf("after the lease was given back: %v", got)
	}
	if got := claimSet("w4", now.Add(2*time.Minute)); !slices.Equal(got, []string{"free", "t1-1", "t2-1"}) {
		t.Fatalf("after the leases ran out: %v", got)
	}
	// Delivered, the head lets the next one go.
	if err := b.RecordAttempt(ctx, "/pay", "t1-1", ordered, "w4", store.Attempt{Number: 2, At: now, Status: 200}, store.Delivered()); err != nil {
		t.Fatal(err)
	}
	if got := claimSet("w5", now.Add(2*time.Minute)); !slices.Equal(got, []string{"t1-2"}) {
		t.Fatalf("after the head was delivered: %v", got)
	}
	// Across a restart (leases die with the process): t1-2 is the head.
	b = restart(t, b, reopen)
	mustInsert(t, b, single(laned("t1-4", "t1"), "{}"), true)
	if got := claimSet("w6", now.Add(3*time.Minute)); !slices.Equal(got, []string{"free", "t1-2", "t2-1"}) {
		t.Fatalf("after a restart: %v", got)
	}
	for _, id := range []string{"t1-2"} {
		if err := b.RecordAttempt(ctx, "/pay", id, ordered, "w6", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
			t.Fatal(err)
		}
	}
	if got := claimSet("w7", now.Add(3*time.Minute)); !slices.Equal(got, []string{"t1-3"}) {
		t.Fatalf("after t1-2: %v", got)
	}
}

// testLaneParkReplaySkip: a dead head parks its lane (across a restart
// too) while other lanes go on; a replay that delivers it, a skip, or a
// purge lets the next one go.
func testLaneParkReplaySkip(t *testing.T, open Open) {
	b, reopen := open(t, Options{})
	ctx := context.Background()
	var recs []*store.Record
	for i := range 5 {
		recs = append(recs, laned(fmt.Sprint("sale-", i), "txn-1"))
	}
	mustInsert(t, b, &store.Ingest{RawBody: []byte("[]"), Records: recs}, true)
	now := time.Now()
	kill := func(id string) {
		t.Helper()
		claimOne(t, b, "w", ordered, id, now)
		if err := b.RecordAttempt(ctx, "/pay", id, ordered, "w", store.Attempt{Number: 1, At: now, Status: 410}, store.Dead(store.DeadGone)); err != nil {
			t.Fatal(err)
		}
	}
	kill("sale-0")
	// Parked: a delivery of another lane inserted later is claimed, the
	// next of the parked lane is not.
	mustInsert(t, b, single(laned("other", "txn-2"), "{}"), true)
	claimOne(t, b, "w", ordered, "other", now.Add(time.Hour))
	if err := b.RecordAttempt(ctx, "/pay", "other", ordered, "w", store.Attempt{Number: 1, At: now, Status: 200}, store.Delivered()); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, b, map[store.Status]int{store.StatusDead: 1, store.StatusPending: 4, store.StatusDelivered: 1})

	b = restart(t, b, reopen)
	claimNone(t, b, []string{ordered}, now.Add(2*time.Hour), "a parked lane after a restart")
	// A replay that fails leaves it parked; one that delivers resumes it.
	if _, err := b.RecordReplay(ctx, "/pay", "sale-0", ordered, store.Attempt{Number: 2, At: now, Status: 500}, false); err != nil {
		t.Fatal(err)
	}
	claimNone(t, b, []string{ordered}, now.Add(2*time.Hour), "after a failed replay of the head")
	if _, err := b.RecordReplay(ctx, "/pay", "sale-0", ordered, store.Attempt{Number: 3, At: now, Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	kill("sale-1")
	claimNone(t, b, []string{ordered}, now.Add(2*time.Hour), "parked again")
	if _, err := b.Skip(ctx, "/pay", "sale-1", ordered); err != nil {
		t.Fatal(err)
	}
	kill("sale-2")
	if n, err := b.Purge(ctx, store.Filter{Source: "/pay", ID: "sale-2"}); err != nil || n != 1 {
		t.Fatalf("purging the dead head: %d %v", n, err)
	}
	claimOne(t, b, "w", ordered, "sale-3", now)
	if _, err := b.Skip(ctx, "/pay", "sale-3", ordered); !errors.Is(err, store.ErrNotDead) {
		t.Fatalf("skipping a leased pending head: %v", err)
	}
	wantRecord(t, b, "/pay", "sale-1", store.StatusDelivered, map[string]store.Status{ordered: store.StatusSkipped})
}

// testLanesManyEngines: workers in several engines on one store (peer), the
// events of many lanes inserted through all of them while the workers
// claim, and a backend that fails at random (now and then for good, the
// dead delivery then skipped): each lane is attempted one delivery at a
// time, and each delivery delivered (or skipped) exactly once, in sequence
// order.
func testLanesManyEngines(t *testing.T, open Open, peer Peer) {
	s := openStore(t, open, Options{})
	const engineCount, workersPerEngine, lanes, perLane = 3, 2, 12, 8
	es := engines(t, s, peer, engineCount)
	ctx := context.Background()

	var mu sync.Mutex
	inflight := map[string]string{}          // lane → the owner attempting it
	settled := map[string][]uint64{}         // lane → sequences delivered or skipped, in that order
	inserted := map[string]map[uint64]bool{} // lane → sequences given
	var total atomic.Int64
	done := make(chan struct{})

	workers := engineCount * workersPerEngine
	kicks := make([]chan struct{}, workers)
	for i := range kicks {
		kicks[i] = make(chan struct{}, 1)
	}
	kickAll := func() {
		for _, k := range kicks {
			select {
			case k <- struct{}{}:
			default:
			}
		}
	}

	var wg sync.WaitGroup
	// Inserters, one per engine, each taking every lane in turn.
	for e := range engineCount {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perLane*lanes/engineCount; n++ {
				i := e*perLane*lanes/engineCount + n
				r := laned(fmt.Sprint("ev-", i), fmt.Sprint("lane-", i%lanes))
				if _, err := es[e].Insert(ctx, single(r, "{}"), n%3 == 0); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				lane := r.Deliveries[0].Lane
				if inserted[lane] == nil {
					inserted[lane] = map[uint64]bool{}
				}
				inserted[lane][r.Deliveries[0].Sequence] = true
				mu.Unlock()
				kickAll()
			}
		}()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := es[w%engineCount]
			owner := fmt.Sprint("engine-", w%engineCount, "-worker-", w)
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := st.Claim(ctx, owner, []string{ordered}, time.Now(), time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					// Woken by a write, or polling as a delivery
					// worker does (an engine may find a write
					// late, see the badger engine's scan marks).
					select {
					case <-done:
						return
					case <-kicks[w]:
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				for _, c := range got {
					d := leased(c)
					mu.Lock()
					if other, busy := inflight[d.Lane]; busy {
						t.Errorf("%s got %s (sequence %d) while %s attempts its lane %s", owner, c.Record.ID, d.Sequence, other, d.Lane)
					}
					inflight[d.Lane] = owner
					mu.Unlock()

					// The backend fails 5 times in 20 (retried at
					// once) and answers 410 Gone once in 20: the
					// delivery dies, parking its lane, and is
					// skipped, as an operator would.
					roll := rnd.IntN(20)
					ok, gone := roll >= 6, roll == 5
					mu.Lock()
					delete(inflight, d.Lane)
					if ok || gone {
						settled[d.Lane] = append(settled[d.Lane], d.Sequence)
					}
					mu.Unlock()
					a := store.Attempt{Number: len(d.Attempts) + 1, At: time.Now(), Status: 200}
					dec := store.Delivered()
					switch {
					case gone:
						a.Status, dec = 410, store.Dead(store.DeadGone)
					case !ok:
						a.Status, dec = 503, store.RetryAt(time.Now())
					}
					if err := st.RecordAttempt(ctx, "/pay", c.Record.ID, ordered, owner, a, dec); err != nil {
						t.Error(err)
						return
					}
					if gone {
						if _, err := st.Skip(ctx, "/pay", c.Record.ID, ordered); err != nil {
							t.Error(err)
							return
						}
					}
					kickAll()
					if ok || gone {
						total.Add(1)
					}
				}
			}
		}()
	}
	// A lane whose head was never handed out again would keep this from
	// ending: the wait fails it.
	testwait.For(t, "every lane delivered", func() bool { return total.Load() == lanes*perLane || t.Failed() })
	close(done)
	wg.Wait()
	if t.Failed() {
		return
	}
	for l := range lanes {
		lane := fmt.Sprint("lane-", l)
		var want []uint64
		for seq := range inserted[lane] {
			want = append(want, seq)
		}
		slices.Sort(want)
		if len(want) != perLane || !slices.Equal(settled[lane], want) {
			t.Errorf("%s: delivered or skipped %v, want each of %v once, in order", lane, settled[lane], want)
		}
	}
	c, err := s.Counts(ctx)
	if err != nil || c[store.StatusDelivered] != lanes*perLane {
		t.Fatalf("counts %v %v", c, err)
	}
}
