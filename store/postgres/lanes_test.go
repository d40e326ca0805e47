package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

// laned is a single-event request of source with one delivery to dest in
// lane.
func laned(source, id, dest, lane string) *store.Ingest {
	in := pending(source, id)
	in.Records[0].Deliveries = []store.Delivery{{Destination: dest, Lane: lane}}
	return in
}

// Three gateways on one schema, each with several workers, deliver K lanes
// whose events are inserted meanwhile through all three, with a backend
// failing at random: every lane's deliveries are attempted one at a time,
// delivered in sequence order, each exactly once, and the sequence numbers
// of a lane are 1, 2, 3... in the order the inserts committed.
func TestLanesAcrossGateways(t *testing.T) {
	const (
		engines, workers = 3, 4
		lanes, perLane   = 4, 40
		total            = lanes * perLane
		dest             = "orders"
	)
	ss := openShared(t, engines, postgres.Options{})
	ctx := context.Background()

	var (
		mu        sync.Mutex
		inFlight  = map[string]int{}      // lane -> attempts under way
		delivered = map[string][]uint64{} // lane -> sequences delivered, in order
		seqOf     = map[string]uint64{}   // id -> sequence Insert gave
		done      atomic.Int64
	)
	// Inserts: each lane's events through the three gateways in turn, the
	// lanes interleaved, one insert at a time per lane so their order is
	// the acceptance order.
	var ins sync.WaitGroup
	for l := range lanes {
		ins.Add(1)
		go func() {
			defer ins.Done()
			lane := fmt.Sprint("txn-", l)
			for i := range perLane {
				id := fmt.Sprintf("%s-%02d", lane, i)
				in := laned("/pay", id, dest, lane)
				res, err := ss[(l+i)%engines].Insert(ctx, in, true)
				if err != nil || !res[0].Inserted {
					t.Errorf("insert %s: %+v %v", id, res, err)
					return
				}
				mu.Lock()
				seqOf[id] = in.Records[0].Deliveries[0].Sequence
				mu.Unlock()
				if want := uint64(i + 1); in.Records[0].Deliveries[0].Sequence != want {
					t.Errorf("%s got sequence %d; want %d", id, in.Records[0].Deliveries[0].Sequence, want)
				}
			}
		}()
	}

	start := time.Now()
	var wg sync.WaitGroup
	for e, s := range ss {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("gw%d-w%d", e, w)
				rng := rand.New(rand.NewPCG(uint64(e), uint64(w)))
				for done.Load() < total && !t.Failed() {
					if time.Since(start) > testwait.Timeout {
						t.Errorf("lanes stalled: %d of %d delivered after %s", done.Load(), total, testwait.Timeout)
						return
					}
					got, err := s.Claim(ctx, owner, []string{dest}, time.Now(), time.Minute, 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						runtime.Gosched()
						continue
					}
					for _, c := range got {
						d := c.Record.Delivery(c.Destination)
						mu.Lock()
						inFlight[d.Lane]++
						if n := inFlight[d.Lane]; n > 1 {
							t.Errorf("lane %s has %d deliveries in flight (%s by %s)", d.Lane, n, c.Record.ID, owner)
						}
						mu.Unlock()
						runtime.Gosched() // the attempt under way
						ok := rng.IntN(4) != 0
						mu.Lock()
						inFlight[d.Lane]--
						if ok {
							delivered[d.Lane] = append(delivered[d.Lane], d.Sequence)
						}
						mu.Unlock()
						decision := store.RetryAt(time.Now())
						status := 503
						if ok {
							decision, status = store.Delivered(), 200
						}
						a := store.Attempt{Number: len(d.Attempts) + 1, At: time.Now(), Status: status}
						if err := s.RecordAttempt(ctx, c.Record.Source, c.Record.ID, c.Destination, owner, a, decision); err != nil {
							t.Errorf("record attempt %s: %v", c.Record.ID, err)
						}
						if ok {
							done.Add(1)
						}
					}
				}
			}()
		}
	}
	ins.Wait()
	wg.Wait()
	if t.Failed() {
		return
	}
	for l := range lanes {
		lane := fmt.Sprint("txn-", l)
		want := make([]uint64, perLane)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		if !slices.Equal(delivered[lane], want) {
			t.Errorf("lane %s delivered sequences %v; want %v", lane, delivered[lane], want)
		}
	}
	counts, err := ss[0].DeliveryCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[dest][store.StatusDelivered] != total || len(counts[dest]) != 1 {
		t.Fatalf("delivery counts %v; want %d delivered", counts, total)
	}
	r, err := ss[1].Get(ctx, "/pay", "txn-3-27")
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Deliveries[0]; d.Lane != "txn-3" || d.Sequence != seqOf["txn-3-27"] || d.Sequence != 28 || r.Status != store.StatusDelivered {
		t.Fatalf("record %+v", r)
	}
}

// A dead head parks its lane; the lane resumes when the head is replayed to
// delivered or skipped, and a head delivered by a replay while a worker's
// attempt is in flight keeps the lane until that attempt is recorded.
func TestLaneParkReplaySkip(t *testing.T) {
	ss := openShared(t, 2, postgres.Options{})
	a, b := ss[0], ss[1]
	ctx := context.Background()
	for i := range 4 {
		if _, err := a.Insert(ctx, laned("/pay", fmt.Sprint("e", i), "d", "L"), true); err != nil {
			t.Fatal(err)
		}
	}
	// Another lane and an unlaned delivery of the same destination are
	// not held up by lane L.
	if _, err := a.Insert(ctx, laned("/pay", "other", "d", "M"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Insert(ctx, laned("/pay", "free", "d", ""), true); err != nil {
		t.Fatal(err)
	}
	claim := func(s *postgres.Store, owner string) []string {
		t.Helper()
		got, err := s.Claim(ctx, owner, []string{"d"}, time.Now(), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range got {
			ids = append(ids, c.Record.ID)
		}
		slices.Sort(ids)
		return ids
	}
	attempt := store.Attempt{Number: 1, At: time.Now(), Status: 410}
	if got := claim(a, "A"); !slices.Equal(got, []string{"e0", "free", "other"}) {
		t.Fatalf("first claim %v; want the heads and the unlaned one", got)
	}
	// e0 dies: lane L is parked.
	if err := a.RecordAttempt(ctx, "/pay", "e0", "d", "A", attempt, store.Dead(store.DeadGone)); err != nil {
		t.Fatal(err)
	}
	if got := claim(b, "B"); len(got) != 0 {
		t.Fatalf("claimed %v behind a dead head", got)
	}
	// Skipping e0 lets e1 go; only a dead delivery can be skipped.
	if _, err := b.Skip(ctx, "/pay", "e1", "d"); !errors.Is(err, store.ErrNotDead) {
		t.Fatalf("skip of a pending delivery: %v", err)
	}
	r, err := b.Skip(ctx, "/pay", "e0", "d")
	if err != nil || r.Deliveries[0].Status != store.StatusSkipped || r.Status != store.StatusDelivered {
		t.Fatalf("skip: %+v %v", r, err)
	}
	if got := claim(b, "B"); !slices.Equal(got, []string{"e1"}) {
		t.Fatalf("after the skip claimed %v; want e1", got)
	}
	// e1 dies too, and a replay delivers it: e2 goes.
	if err := b.RecordAttempt(ctx, "/pay", "e1", "d", "B", attempt, store.Dead(store.DeadGone)); err != nil {
		t.Fatal(err)
	}
	if r, err := a.RecordReplay(ctx, "/pay", "e1", "d", store.Attempt{Number: 2, At: time.Now(), Status: 200}, true); err != nil ||
		r.Deliveries[0].Status != store.StatusDelivered || r.Deliveries[0].Replays != 1 {
		t.Fatalf("replay: %+v %v", r, err)
	}
	if got := claim(a, "A"); !slices.Equal(got, []string{"e2"}) {
		t.Fatalf("after the replay claimed %v; want e2", got)
	}
	// e2 is replayed to delivered while A's attempt is in flight: e3 waits
	// for that attempt.
	if _, err := b.RecordReplay(ctx, "/pay", "e2", "d", store.Attempt{Number: 1, At: time.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if got := claim(b, "B"); len(got) != 0 {
		t.Fatalf("claimed %v while the head's attempt is in flight", got)
	}
	if err := a.RecordAttempt(ctx, "/pay", "e2", "d", "A", store.Attempt{Number: 2, At: time.Now(), Status: 200}, store.Delivered()); err != nil {
		t.Fatal(err)
	}
	if got := claim(b, "B"); !slices.Equal(got, []string{"e3"}) {
		t.Fatalf("after the head's attempt claimed %v; want e3", got)
	}
	// A lease given back without an attempt lets the next claim have it.
	if err := b.ReleaseLease(ctx, "/pay", "e3", "d", "B"); err != nil {
		t.Fatal(err)
	}
	if got := claim(a, "A"); !slices.Equal(got, []string{"e3"}) {
		t.Fatalf("after the release claimed %v; want e3", got)
	}
}

// A head a replay delivered while a worker leased it holds its lane until
// that worker records its attempt; a worker that never does (it died)
// holds it until its lease runs out, and then the sweep lets the lane go
// on.
func TestLaneLeaseOfADeadWorker(t *testing.T) {
	clock := storetest.NewClock()
	s := openShared(t, 1, postgres.Options{Now: clock.Now})[0]
	ctx := context.Background()
	for _, id := range []string{"head", "next"} {
		if _, err := s.Insert(ctx, laned("/pay", id, "d", "L"), true); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Claim(ctx, "dies", []string{"d"}, clock.Now(), time.Minute, 5)
	if err != nil || len(got) != 1 || got[0].Record.ID != "head" {
		t.Fatalf("claim %v %v", got, err)
	}
	if _, err := s.RecordReplay(ctx, "/pay", "head", "d", store.Attempt{Number: 1, At: clock.Now(), Status: 200}, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, "w", []string{"d"}, clock.Now(), time.Minute, 5); err != nil || len(got) != 0 {
		t.Fatalf("claimed %v (%v) while the head's lease is live", got, err)
	}
	clock.Advance(2 * time.Minute)
	testwait.For(t, "the lane to go on once the dead worker's lease ran out", func() bool {
		got, err := s.Claim(ctx, "w", []string{"d"}, clock.Now(), time.Minute, 5)
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 1 && got[0].Record.ID == "next"
	})
}

// A lane moving on (its head delivered on one gateway) wakes the workers of
// another gateway for that destination at once, as a new event does.
func TestLaneMovingOnNotifies(t *testing.T) {
	ss := openShared(t, 2, postgres.Options{})
	a, b := ss[0], ss[1]
	ctx := context.Background()
	woke := make(chan string, 256)
	stop := b.Subscribe(func(dest string) {
		select {
		case woke <- dest:
		default:
		}
	})
	defer stop()
	// waitFor returns once b has heard dest.
	waitFor := func(dest string) {
		t.Helper()
		deadline := time.After(testwait.Timeout)
		for {
			select {
			case got := <-woke:
				if got == dest {
					return
				}
			case <-deadline:
				t.Fatalf("no notification for %q", dest)
			}
		}
	}
	for _, id := range []string{"head", "next"} {
		if _, err := a.Insert(ctx, laned("/pay", id, "d", "L"), true); err != nil {
			t.Fatal(err)
		}
	}
	// A marker event at a time until b hears one (its listener connects
	// in the background): notifications come in commit order, so the
	// inserts' ones have been heard by then, and are dropped.
	marked := false
	for i := 0; !marked; i++ {
		if _, err := a.Insert(ctx, pending("/marker", fmt.Sprint("m", i)), true); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-woke:
			marked = got == "/marker"
		case <-time.After(200 * time.Millisecond):
		}
	}
	for len(woke) > 0 {
		<-woke
	}
	got, err := a.Claim(ctx, "A", []string{"d"}, time.Now(), time.Minute, 5)
	if err != nil || len(got) != 1 || got[0].Record.ID != "head" {
		t.Fatalf("claim %v %v", got, err)
	}
	if err := a.RecordAttempt(ctx, "/pay", "head", "d", "A", store.Attempt{Number: 1, At: time.Now(), Status: 200}, store.Delivered()); err != nil {
		t.Fatal(err)
	}
	waitFor("d")
	if got, err := b.Claim(ctx, "B", []string{"d"}, time.Now(), time.Minute, 5); err != nil || len(got) != 1 || got[0].Record.ID != "next" {
		t.Fatalf("the woken gateway claimed %v (%v); want next", got, err)
	}
}

// Purging a lane's head (its deliveries deleted with it) makes the next
// delivery the head, claimable at once.
func TestLanePurgedHead(t *testing.T) {
	s := openShared(t, 1, postgres.Options{})[0]
	ctx := context.Background()
	for _, id := range []string{"head", "next"} {
		if _, err := s.Insert(ctx, laned("/pay", id, "d", "L"), true); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Purge(ctx, store.Filter{Source: "/pay", ID: "head"}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	got, err := s.Claim(ctx, "w", []string{"d"}, time.Now(), time.Minute, 5)
	if err != nil || len(got) != 1 || got[0].Record.ID != "next" {
		t.Fatalf("after the head's purge claimed %v (%v); want next", got, err)
	}
}
