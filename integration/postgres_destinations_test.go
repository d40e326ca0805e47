package integration

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// pgDestinationSite is an async payment route on the postgres store in
// schema, with one destination block.
func pgDestinationSite(schema, destination string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store postgres {env.TEST_PG_DSN} {
				schema ` + schema + `
			}
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}` + destination + `
		}
	}
}
`
}

// startPostgresGateways starts n gateways on one fresh PostgreSQL schema
// with site(schema).
func startPostgresGateways(t *testing.T, n int, site func(schema string) string) []*testcaddy.Instance {
	t.Helper()
	dsn := pgtest.DSN(t)
	cfg := site(pgtest.Schema(t, dsn))
	env := append(append([]string(nil), gatewayEnv...), "TEST_PG_DSN="+dsn)
	gws := make([]*testcaddy.Instance, n)
	for i := range gws {
		gws[i] = testcaddy.New(t, env...)
		gws[i].Start(cfg)
	}
	return gws
}

// TestPostgresOrderedLanesThreeGateways: the ordered lanes test with three
// gateways on one PostgreSQL schema, each taking a share of the payment
// gateway's parallel requests and each delivering: every transaction's
// events still reach the backend in acceptance order, exactly once.
func TestPostgresOrderedLanesThreeGateways(t *testing.T) {
	be := newLaneBackend(t, 0.3)
	gws := startPostgresGateways(t, 3, func(schema string) string {
		return pgDestinationSite(schema, `
			destination ledger {
				upstream `+be.URL+`
				workers 8
				timeout 5s
				order_by subject
				retry {
					attempts 1000
					initial_delay 20ms
					max_delay 100ms
				}
				breaker {
					failures 1000
				}
			}`)
	})
	urls := make([]string, len(gws))
	for i, gw := range gws {
		urls[i] = gw.BaseURL() + "/hooks/usaepay"
	}
	_, types := sendSaleAndVoid(t, urls, 60)
	lanes, seqs := laneOrder(t, gws[0], types)
	checkLanes(t, be.requests(), lanes, seqs)
}

// TestPostgresRatePerGateway: the rate limit is per gateway process. Two
// gateways on one schema deliver a backlog for a destination with rate
// 20/s at about twice that, which a limit shared through the store would
// not allow.
func TestPostgresRatePerGateway(t *testing.T) {
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	be := newUnstartedBackend(t)
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	be.Start()
	const rate, events = 20, 400
	gws := startPostgresGateways(t, 2, func(schema string) string {
		return pgDestinationSite(schema, `
			destination ledger {
				upstream `+be.URL+`
				workers 8
				rate 20/s
			}`)
	})
	var wg sync.WaitGroup
	for i := range events {
		_, body := paymentEventOf(t, "transaction.sale.success", "tx", "5.00")
		url := gws[i%2].BaseURL() + "/hooks/usaepay"
		wg.Go(func() {
			if code, answer, err := postRetrying(t, url, body, signedHeader(body)); err != nil || code != http.StatusAccepted {
				t.Errorf("post: %d %v %v", code, answer, err)
			}
		})
	}
	wg.Wait()
	testwait.For(t, "every event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrivals) >= events
	})
	mu.Lock()
	defer mu.Unlock()
	// The middle of the drain, away from the bursts at its start and the
	// tail where one gateway may have run out of work first.
	from, to := arrivals[events/4], arrivals[3*events/4]
	got := float64(3*events/4-events/4) / to.Sub(from).Seconds()
	t.Logf("two gateways at rate %d/s each delivered %.1f/s", rate, got)
	if got < 1.5*rate || got > 2.2*rate {
		t.Fatalf("two gateways at rate %d/s delivered %.1f/s, want about %d/s: the rate is per gateway", rate, got, 2*rate)
	}
}
