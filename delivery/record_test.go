package delivery

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// errTerminated is what a write gets from a database that is restarting.
var errTerminated = errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")

// flakyStore fails RecordAttempt as a database restarting under the engine
// does: the next fails calls, or every call while down is set.
type flakyStore struct {
	store.Store
	mu    sync.Mutex
	fails int
	down  bool
	// committed makes a failing call write the attempt first: the commit
	// went through and only its answer was lost.
	committed bool
	calls     int
}

func (s *flakyStore) RecordAttempt(ctx context.Context, source, id, dest, owner string, a store.Attempt, d store.Decision) error {
	s.mu.Lock()
	s.calls++
	fail := s.down || s.fails > 0
	if s.fails > 0 {
		s.fails--
	}
	committed := s.committed
	s.mu.Unlock()
	if !fail {
		return s.Store.RecordAttempt(ctx, source, id, dest, owner, a, d)
	}
	if committed {
		if err := s.Store.RecordAttempt(ctx, source, id, dest, owner, a, d); err != nil {
			return err
		}
	}
	return errTerminated
}

func (s *flakyStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *flakyStore) recordCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestRecordTriedAgainWhileLeaseHolds(t *testing.T) {
	st := &flakyStore{Store: openStore(t), fails: 3}
	be := newBackend(t, nil)
	e := start(t, fast(t, st, be.srv.URL))
	insert(t, st, "evt-rec")
	e.Notify()
	waitStatus(t, st, "evt-rec", store.StatusDelivered)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-rec")
	if n := len(be.hitsFor("evt-rec")); n != 1 {
		t.Fatalf("backend saw the event %d times, want once", n)
	}
	if len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != 200 {
		t.Fatalf("stored %+v", rec.Deliveries[0].Attempts)
	}
	if n := st.recordCalls(); n != 4 {
		t.Errorf("RecordAttempt called %d times, want 4 (3 failures, then the write)", n)
	}
}

func TestRecordWhoseAnswerWasLostIsNotAppendedTwice(t *testing.T) {
	st := &flakyStore{Store: openStore(t), fails: 1, committed: true}
	be := newBackend(t, nil)
	e := start(t, fast(t, st, be.srv.URL))
	insert(t, st, "evt-lost")
	e.Notify()
	waitStatus(t, st, "evt-lost", store.StatusDelivered)
	// Stop returns once the worker is done: it found the attempt stored
	// instead of writing it again.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(context.Background(), testSource, "evt-lost")
	if len(rec.Deliveries[0].Attempts) != 1 || len(be.hitsFor("evt-lost")) != 1 || st.recordCalls() != 1 {
		t.Fatalf("stored attempts %+v, backend saw %d, RecordAttempt called %d times",
			rec.Deliveries[0].Attempts, len(be.hitsFor("evt-lost")), st.recordCalls())
	}
}

// TestRecordGivenUpWhenLeaseRunsOut: once the lease runs out the event is
// claimed and sent again (at least once), and the first worker has stopped
// writing its outcome, which would now be a stale one.
func TestRecordGivenUpWhenLeaseRunsOut(t *testing.T) {
	st := &flakyStore{Store: openStore(t), down: true}
	be := newBackend(t, nil)
	cfg := fast(t, st, be.srv.URL)
	cfg.Timeout, cfg.Lease = 300*time.Millisecond, time.Second
	e := start(t, cfg)
	insert(t, st, "evt-lease")
	e.Notify()
	testwait.For(t, "the event sent again after its lease ran out", func() bool { return len(be.hitsFor("evt-lease")) >= 2 })
	st.setDown(false)
	rec := waitStatus(t, st, "evt-lease", store.StatusDelivered)
	// Only the worker holding the live lease wrote: a worker still trying
	// past its lease would have appended a second attempt.
	if len(rec.Deliveries[0].Attempts) != 1 {
		t.Fatalf("stored attempts %+v, want one", rec.Deliveries[0].Attempts)
	}
}

func TestStopBoundsRecordRetries(t *testing.T) {
	st := &flakyStore{Store: openStore(t), down: true}
	be := newBackend(t, nil)
	cfg := fast(t, st, be.srv.URL)
	cfg.Lease = time.Hour // only Stop can end the retries
	cfg.StopTimeout = 200 * time.Millisecond
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	insert(t, st, "evt-stop")
	e.Notify()
	testwait.For(t, "the record tried again", func() bool { return st.recordCalls() >= 2 })
	if err := e.Stop(); err == nil {
		t.Fatal("Stop reported nothing given up")
	}
	calls := st.recordCalls()
	rec, _ := st.Get(context.Background(), testSource, "evt-stop")
	if rec.Status != store.StatusPending || len(rec.Deliveries[0].Attempts) != 0 || len(be.hitsFor("evt-stop")) != 1 {
		t.Fatalf("after Stop: %s with %+v, backend saw %d", rec.Status, rec.Deliveries[0].Attempts, len(be.hitsFor("evt-stop")))
	}
	st.setDown(false)
	if n := st.recordCalls(); n != calls {
		t.Fatalf("RecordAttempt called after Stop returned")
	}
}

func TestRecordRetryDelay(t *testing.T) {
	for try, ceiling := range map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond,
		5: 800 * time.Millisecond, 6: time.Second, 100: time.Second} {
		for range 50 {
			if d := RecordRetryDelay(try); d < ceiling/2 || d > ceiling {
				t.Fatalf("try %d: %s, want within [%s, %s]", try, d, ceiling/2, ceiling)
			}
		}
	}
}
