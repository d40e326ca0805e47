package badger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// A sync route's held deliveries, made pending by MarkDelivered, are
// claimed and recorded by a worker at once, while other reservations are
// being written: the attempt is the stored record's, never refused as a
// lost lease because the reservation it was written from is still in
// memory for a moment.
func TestHeldDeliveriesClaimedAsTheyAreWritten(t *testing.T) {
	db, _ := openTest(t, Options{})
	ctx := context.Background()
	const n = 200
	var done atomic.Int64
	var lost atomic.Int64
	stop := make(chan struct{})
	var cw sync.WaitGroup
	cw.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := db.Claim(ctx, "o", []string{"ledger"}, time.Now().Add(time.Second), time.Minute, 16)
			if err != nil {
				t.Error(err)
				return
			}
			for _, c := range got {
				err := db.RecordAttempt(ctx, "/s", c.Record.ID, "ledger", "o", store.Attempt{Number: 1, At: time.Now(), Status: 200}, store.Delivered())
				if errors.Is(err, store.ErrLeaseLost) {
					lost.Add(1)
				} else if err != nil {
					t.Error(err)
				} else {
					done.Add(1)
				}
			}
		}
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("e%d", i)
			rec := &store.Record{Source: "/s", ID: id, Provider: "usaepay", Type: "t", Event: []byte(`{}`),
				Deliveries: []store.Delivery{{Destination: "/s", Status: store.StatusReserved}, {Destination: "ledger", Status: store.StatusHeld, Lane: "L" + id}}}
			if _, err := db.Insert(ctx, &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, false); err != nil {
				t.Error(err)
				return
			}
			if err := db.MarkDelivered(ctx, "/s", id, store.Attempt{Number: 1, At: time.Now(), Status: 200}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	testwait.For(t, "every delivery claimed and recorded", func() bool { return done.Load()+lost.Load() >= n })
	close(stop)
	cw.Wait()
	if lost.Load() != 0 || done.Load() != n {
		t.Fatalf("done %d, lease lost %d of %d", done.Load(), lost.Load(), n)
	}
}
