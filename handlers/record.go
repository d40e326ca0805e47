package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// RecordRetryLimit bounds how long the delivery of a sync event the backend
// accepted is written again in the background when the store did not take
// it (see Gateway.recordDelivered).
const RecordRetryLimit = 10 * time.Minute

// ErrNoResponse is the failure of a sync forward after which nothing wrote
// a response: no handler follows webhook_gateway in the route (Caddy ends
// a route with a handler that writes nothing), so no backend got the
// event. It is a configuration error, answered 502 like a failed delivery.
var ErrNoResponse = errors.New("no handler after webhook_gateway wrote a response; sync delivery needs one, normally reverse_proxy")

// recorder runs the background writes of sync deliveries the store did not
// take at once. Its zero value is ready; Gateway.Close ends it.
type recorder struct {
	mu      sync.Mutex
	closed  bool
	ctx     context.Context // cancelled when Close gives up waiting
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pending atomic.Int64
}

// context returns the recorder's context, made on first use.
func (r *recorder) context() context.Context {
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(context.Background())
	}
	return r.ctx
}

// start runs f in the background unless the recorder is closed.
func (r *recorder) start(f func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	ctx := r.context()
	r.wg.Add(1)
	r.pending.Add(1)
	go func() {
		defer func() { r.pending.Add(-1); r.wg.Done() }()
		f(ctx)
	}()
	return true
}

// Close ends the background recording of sync deliveries: it waits until
// ctx is done for the records still being written, then gives them up
// (each is logged) and returns an error saying how many. A request served
// after Close still answers and records its delivery, but a record the
// store does not take at once is not tried again.
func (g *Gateway) Close(ctx context.Context) error {
	r := &g.records
	r.mu.Lock()
	r.closed = true
	r.context()
	cancel := r.cancel
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	n := r.pending.Load()
	cancel()
	<-done
	return fmt.Errorf("gave up recording %d sync deliveries the backend accepted: the store did not take them", n)
}

// recordDelivered records a sync delivery the backend accepted. The
// provider is answered delivered whatever the store says: a 502 would make
// it retry, and the backend would get the event twice. A write that fails
// (a database restarting) is tried again in the background, with
// delivery.RecordRetryDelay between tries, until it lands, the record is
// gone, the route is unloaded (Close) or RecordRetryLimit has passed.
//
// Meanwhile the reservation keeps the provider's retries from being
// forwarded (they are answered 409 in_progress) until its ReservedUntil.
// The store has no way to extend a reservation, and extending it would
// need the store that is failing: if the store stays down past the
// expiry (2 minutes by default), a retry arriving once it is back may take
// the key before the record lands and be forwarded again, with the same
// Idempotency-Key. The background write goes on past the expiry, since the
// backend has the event whoever holds the key now; it ends when the
// expired reservation has been swept (ErrNotFound).
func (g *Gateway) recordDelivered(ctx context.Context, rec *store.Record, attempt store.Attempt) {
	ctx, cancel := detached(ctx, StoreTimeout)
	err := g.Store.MarkDelivered(ctx, rec.Source, rec.ID, attempt)
	cancel()
	if err == nil {
		return
	}
	log := g.Logger.With(zap.String("source", rec.Source), zap.String("id", rec.ID))
	if errors.Is(err, store.ErrNotFound) {
		log.Error("backend accepted the event but its reservation is gone (purged meanwhile); answered delivered, nothing recorded",
			zap.Error(err))
		return
	}
	started := g.records.start(func(ctx context.Context) { g.keepRecording(ctx, rec, attempt, log) })
	if !started {
		log.Error("backend accepted the event but recording it failed while the route is unloading; answered delivered, not recorded",
			zap.Error(err))
		return
	}
	log.Error("backend accepted the event but recording it failed; answered delivered, recording it again in the background",
		zap.Error(err))
}

// keepRecording writes a sync delivery until it lands; see recordDelivered.
func (g *Gateway) keepRecording(ctx context.Context, rec *store.Record, attempt store.Attempt, log *zap.Logger) {
	giveUp := time.Now().Add(RecordRetryLimit)
	for try := 1; ; try++ {
		wait := delivery.RecordRetryDelay(try)
		if time.Now().Add(wait).After(giveUp) {
			log.Error("gave up recording a sync delivery the backend accepted",
				zap.Duration("after", RecordRetryLimit), zap.Int("tries", try))
			return
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			log.Error("route unloaded before a sync delivery the backend accepted could be recorded", zap.Int("tries", try))
			return
		}
		done, err := g.recordAgain(ctx, rec, attempt)
		switch {
		case done && err == nil:
			log.Info("sync delivery recorded after the store came back", zap.Int("tries", try+1))
			return
		case done:
			log.Error("gave up recording a sync delivery the backend accepted", zap.Int("tries", try+1), zap.Error(err))
			return
		}
		log.Debug("recording a sync delivery failed again", zap.Int("tries", try+1), zap.Error(err))
	}
}

// recordAgain makes one more try at recording a delivery. A failed write
// may have been committed (its answer lost with the connection), so the
// record is read first: a delivery already there is not appended twice.
// done says whether to stop, with err saying why when the record did not
// land.
func (g *Gateway) recordAgain(ctx context.Context, rec *store.Record, attempt store.Attempt) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	// Only MarkDelivered says whether the record is gone: a reader may
	// not show a reservation past its expiry that the write still finds.
	if stored, err := g.Store.Get(ctx, rec.Source, rec.ID); err == nil {
		if d := stored.Delivery(g.syncDestination(rec.Source)); d != nil &&
			d.Status == store.StatusDelivered && delivery.HasAttempt(d, attempt) {
			return true, nil
		}
	}
	err = g.Store.MarkDelivered(ctx, rec.Source, rec.ID, attempt)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrClosed):
		return true, err
	}
	return false, err
}
