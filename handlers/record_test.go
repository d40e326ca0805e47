package handlers

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// errTerminated is what a write gets from a database that is restarting.
var errTerminated = errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")

// flakyStore fails MarkDelivered while down is set, as a database
// restarting between the backend's answer and its record does, and counts
// the calls that end a reservation.
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	down bool
	// committed makes a failing call write first: the commit went
	// through and only its answer was lost.
	committed       bool
	marks, releases int
}

func (s *flakyStore) MarkDelivered(ctx context.Context, source, id string, a store.Attempt) error {
	s.mu.Lock()
	s.marks++
	down, committed := s.down, s.committed
	s.mu.Unlock()
	if !down {
		return s.Store.MarkDelivered(ctx, source, id, a)
	}
	if committed {
		if err := s.Store.MarkDelivered(ctx, source, id, a); err != nil {
			return err
		}
	}
	return errTerminated
}

func (s *flakyStore) Release(ctx context.Context, source, id string, reservedUntil time.Time, failed *store.Attempt) error {
	s.mu.Lock()
	s.releases++
	s.mu.Unlock()
	return s.Store.Release(ctx, source, id, reservedUntil, failed)
}

func (s *flakyStore) set(down, committed bool) {
	s.mu.Lock()
	s.down, s.committed = down, committed
	s.mu.Unlock()
}

func (s *flakyStore) counts() (marks, releases int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks, s.releases
}

func flakyGateway(t *testing.T) (*Gateway, *flakyStore, *observer.ObservedLogs) {
	g, _ := newGateway(t, Sync, normalize.USAePay)
	st := &flakyStore{Store: g.Store}
	g.Store = st
	core, logs := observer.New(zapcore.DebugLevel)
	g.Logger = zap.New(core)
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return g, st, logs
}

func TestSyncBackend2xxIsDeliveredWhenTheRecordFails(t *testing.T) {
	g, st, logs := flakyGateway(t)
	be := &backend{}
	body := testdata(t, "usaepay", "transaction.sale.success")
	st.set(true, false)

	r := serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusOK || r.answer["status"] != "delivered" {
		t.Fatalf("backend answered 200, record failed: %d %v, want 200 delivered", r.code, r.answer)
	}
	if logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("id", exampleID)).Len() != 1 {
		t.Errorf("the failed record was not logged as an error: %v", logs.All())
	}
	// The reservation stays: the provider's retry is not forwarded.
	r = serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusConflict || r.answer["status"] != "in_progress" {
		t.Fatalf("retry while unrecorded: %d %v, want 409 in_progress", r.code, r.answer)
	}

	st.set(false, false)
	testwait.For(t, "the delivery recorded in the background", func() bool {
		rec, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
		return err == nil && rec.Status == store.StatusDelivered
	})
	r = serve(t, g, http.MethodPost, body, be.next)
	if r.code != http.StatusOK || r.answer["status"] != "duplicate" {
		t.Fatalf("retry once recorded: %d %v, want 200 duplicate", r.code, r.answer)
	}
	if n := len(be.bodies); n != 1 {
		t.Fatalf("the backend got the event %d times, want once", n)
	}
	rec, _ := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if len(rec.Deliveries[0].Attempts) != 1 || rec.Deliveries[0].Attempts[0].Status != http.StatusOK {
		t.Fatalf("stored attempts %+v", rec.Deliveries[0].Attempts)
	}
	if _, releases := st.counts(); releases != 0 {
		t.Errorf("the reservation of a delivered event was released %d times", releases)
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("sync delivery recorded after the store came back").Len() != 1 {
		t.Errorf("the late record was not logged: %v", logs.All())
	}
}

func TestSyncRecordWhoseAnswerWasLostIsNotAppendedTwice(t *testing.T) {
	g, st, _ := flakyGateway(t)
	be := &backend{}
	body := testdata(t, "usaepay", "transaction.sale.success")
	st.set(true, true)
	if r := serve(t, g, http.MethodPost, body, be.next); r.code != http.StatusOK {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	st.set(false, false)
	// Close waits for the background record, which finds the delivery
	// stored and writes nothing.
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, _ := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if marks, _ := st.counts(); marks != 1 || rec.Status != store.StatusDelivered || len(rec.Deliveries[0].Attempts) != 1 {
		t.Fatalf("MarkDelivered called %d times; stored %s with %+v", marks, rec.Status, rec.Deliveries[0].Attempts)
	}
}

func TestSyncCloseGivesUpRecording(t *testing.T) {
	g, st, logs := flakyGateway(t)
	body := testdata(t, "usaepay", "transaction.sale.success")
	st.set(true, false)
	if r := serve(t, g, http.MethodPost, body, (&backend{}).next); r.code != http.StatusOK {
		t.Fatalf("got %d %v", r.code, r.answer)
	}
	testwait.For(t, "the record tried again", func() bool { marks, _ := st.counts(); return marks >= 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := g.Close(ctx); err == nil {
		t.Fatal("Close reported nothing given up")
	}
	marks, releases := st.counts()
	st.set(false, false)
	if m, _ := st.counts(); m != marks || releases != 0 {
		t.Fatalf("after Close: MarkDelivered %d more times, %d releases", m-marks, releases)
	}
	if logs.FilterMessage("route unloaded before a sync delivery the backend accepted could be recorded").Len() != 1 {
		t.Errorf("giving up was not logged: %v", logs.All())
	}
	// A request after Close is still answered delivered; its record is
	// tried once.
	st.set(true, false)
	other := testdata(t, "usaepay", "transaction.sale.captured")
	if r := serve(t, g, http.MethodPost, other, (&backend{}).next); r.code != http.StatusOK || r.answer["status"] != "delivered" {
		t.Fatalf("after Close: %d %v, want 200 delivered", r.code, r.answer)
	}
	if m, _ := st.counts(); m != marks+1 {
		t.Fatalf("after Close: MarkDelivered %d times, want once", m-marks)
	}
	if logs.FilterMessageSnippet("while the route is unloading").Len() != 1 {
		t.Errorf("the unrecorded delivery after Close was not logged: %v", logs.All())
	}
}

func TestSyncNothingAfterGatewayIsAFailure(t *testing.T) {
	g, st, logs := flakyGateway(t)
	body := testdata(t, "usaepay", "transaction.sale.success")
	nothing := func(http.ResponseWriter, *http.Request) error { return nil } // Caddy's end of a route
	for try := range 2 {
		r := serve(t, g, http.MethodPost, body, nothing)
		if r.code != http.StatusBadGateway || r.answer["status"] != "failed" {
			t.Fatalf("try %d with nothing after the gateway: %d %v, want 502 failed", try+1, r.code, r.answer)
		}
		// Each try replaces the released record of the one before and
		// keeps its attempt.
		got, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
		if err != nil || got.Status != store.StatusReleased || len(got.Deliveries[0].Attempts) != try+1 ||
			got.Deliveries[0].Attempts[try].Error != ErrNoResponse.Error() {
			t.Fatalf("try %d: the released record: %+v %v", try+1, got, err)
		}
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("source", "/usaepay"))
	if errs.Len() != 2 || errs.All()[0].ContextMap()["error"] != ErrNoResponse.Error() {
		t.Fatalf("config error not logged with the route's source: %v", logs.All())
	}
	if marks, releases := st.counts(); marks != 0 || releases != 2 {
		t.Fatalf("MarkDelivered %d, Release %d; want 0 and 2", marks, releases)
	}
	if r := serve(t, g, http.MethodPost, body, (&backend{}).next); r.code != http.StatusOK || r.answer["status"] != "delivered" {
		t.Fatalf("with a backend after the gateway: %d %v", r.code, r.answer)
	}
}
