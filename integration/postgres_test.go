package integration

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness"
	"github.com/webhookgw/caddy-webhook-gateway/harness/report"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// pgSite is a site of every provider on the postgres store in schema:
// async routes for the loyalty and subscription platforms and for payments
// at /hooks/usaepay, and a sync payment route at /hooks/usaepay-sync in
// front of reverse_proxy. The DSN comes from the environment, as it would in
// production. Leases run out 32s after a claim (timeout 2s + 30s).
func pgSite(upstream, schema string) string {
	route := func(path, provider, auth, opts, after string) string {
		return `
	route ` + path + ` {
		webhook_gateway ` + provider + ` {
			store postgres {env.TEST_PG_DSN} {
				schema ` + schema + `
			}
			max_event_age off
			` + auth + `
			signing_secret {env.TEST_SIGNING_SECRET}
			` + opts + `
		}
		` + after + `
	}`
	}
	async := "upstream " + upstream + "\n\t\t\tworkers 8\n\t\t\ttimeout 2s\n\t\t\tretry {\n\t\t\t\t" + fastRetry + "\n\t\t\t}"
	return `http://127.0.0.1:{{PORT}} {` +
		route("/hooks/openloyalty", "openloyalty", "auth header "+loyaltyHeader+" {env.TEST_LOYALTY_TOKEN}", async, "") +
		route("/hooks/sublytics/*", "sublytics", "auth path_secret {env.TEST_SUBLYTICS_SECRET}", "time_zone America/New_York\n\t\t\t"+async, "") +
		route("/hooks/usaepay", "usaepay", "auth hmac {env.TEST_SIG_KEY}", async, "") +
		route("/hooks/usaepay-sync", "usaepay", "auth hmac {env.TEST_SIG_KEY}", "deliver sync", "reverse_proxy "+strings.TrimPrefix(upstream, "http://")) + `
}
`
}

// startGateways starts n gateways on one PostgreSQL schema of their own
// on the shared test server.
func startGateways(t *testing.T, n int, upstream string) []*testcaddy.Instance {
	t.Helper()
	return startGatewaysOn(t, n, upstream, pgtest.DSN(t))
}

// startGatewaysOn is startGateways on the server dsn names.
func startGatewaysOn(t *testing.T, n int, upstream, dsn string) []*testcaddy.Instance {
	t.Helper()
	site := pgSite(upstream, pgtest.Schema(t, dsn))
	env := append(append([]string(nil), gatewayEnv...), "TEST_PG_DSN="+dsn, "TEST_SIGNING_SECRET="+demoSigningSecret)
	gws := make([]*testcaddy.Instance, n)
	for i := range gws {
		gws[i] = testcaddy.New(t, env...)
		gws[i].Start(site)
	}
	return gws
}

// TestPostgresThreeGatewaysHarness runs the harness over three gateways on
// one database, each request to the next gateway in turn: duplicates and
// redeliveries land on other gateways than their originals, and still
// nothing is lost or doubled.
func TestPostgresThreeGatewaysHarness(t *testing.T) {
	pgtest.DSN(t)
	sk, err := harness.NewSink(sink.Config{
		Secrets: []string{demoSigningSecret},
		Faults:  sink.Faults{FailShare: 0.2, RefuseAfter: 300 * time.Millisecond, RefuseFor: 700 * time.Millisecond},
		Seed:    7,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sink.Listen("127.0.0.1:0", sk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	gws := startGateways(t, 3, srv.URL)

	providers := exampleProviders()
	pay := providers["usaepay"]
	pay.Path = "/hooks/usaepay-sync" // the sync route: reservations shared by the three
	providers["usaepay"] = pay
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := harness.Run(ctx, harness.Scenario{
		Gateway: gws[0].BaseURL(),
		UseSink: srv,
		Sim: sim.Config{
			Targets:         []string{gws[1].BaseURL(), gws[2].BaseURL()},
			Providers:       providers,
			Count:           300,
			Concurrency:     8,
			DuplicateShare:  0.1,
			RedeliveryShare: 0.1,
			BurstSize:       20,
			BurstPause:      50 * time.Millisecond,
		},
		Wait: report.WaitOptions{Timeout: time.Minute},
	})
	if rep != nil {
		t.Logf("\n%s", rep.Table())
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.Doubled != 0 {
		t.Fatalf("lost %d, doubled %d: want 0 and 0", rep.Lost, rep.Doubled)
	}
	if rep.InvalidAtSink != 0 || rep.AckedEvents == 0 || rep.Delivered < rep.AckedEvents || rep.Unexpected != 0 {
		t.Fatalf("acknowledged %d, delivered %d, invalid %d, unexpected %d", rep.AckedEvents, rep.Delivered, rep.InvalidAtSink, rep.Unexpected)
	}
}

// TestPostgresIdenticalRequestsAcrossGateways sends one event 50 times at
// once, spread over three gateways, on the async and the sync route: the
// backend sees it exactly once on each.
func TestPostgresIdenticalRequestsAcrossGateways(t *testing.T) {
	pgtest.DSN(t)
	be := newBackend(t)
	be.delay = 100 * time.Millisecond // keep the sync reservation in flight while the copies arrive
	gws := startGateways(t, 3, be.URL)
	for _, path := range []string{"/hooks/usaepay", "/hooks/usaepay-sync"} {
		id, body := paymentEvent(t)
		var wg sync.WaitGroup
		codes := make([]int, 50)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, err := send(gws[i%3].BaseURL()+path, body, signedHeader(body))
				if err != nil {
					t.Error(err)
				}
				codes[i] = code
			}()
		}
		wg.Wait()
		for _, c := range codes {
			if c >= 500 {
				t.Fatalf("%s: answers %v", path, codes)
			}
		}
		testwait.For(t, path+" delivered", func() bool { return be.deliveredOK(id) })
		waitStatus(t, gws[0], "/usaepay", id, "delivered")
		if n := be.count(id); n != 1 {
			t.Fatalf("%s: the backend saw the event %d times (answers %v)", path, n, codes)
		}
	}
}

// burst sends total payment events over the gateways in turn from 16
// senders, and returns the ids
// acknowledged with 202 and how many answers were 503.
func burst(t *testing.T, gws []*testcaddy.Instance, total int) (acked func() []string, unavailable *atomic.Int64, done func()) {
	var (
		mu   sync.Mutex
		ids  []string
		wg   sync.WaitGroup
		next atomic.Int64
	)
	unavailable = new(atomic.Int64)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(total) {
					return
				}
				id, body := paymentEvent(t)
				req, _ := http.NewRequest(http.MethodPost, gws[int(n)%len(gws)].BaseURL()+"/hooks/usaepay", bytesReader(body))
				req.Header = signedHeader(body)
				resp, err := client.Do(req)
				if err != nil {
					continue // killed mid-request: not acknowledged
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				case http.StatusServiceUnavailable:
					unavailable.Add(1)
				}
			}
		}()
	}
	acked = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
	return acked, unavailable, wg.Wait
}

// TestPostgresKill9OneGateway kills one of three gateways mid-burst: the
// events it acknowledged are delivered by the other two, once its leases
// run out.
func TestPostgresKill9OneGateway(t *testing.T) {
	pgtest.DSN(t)
	be := newBackend(t)
	// A slow backend keeps a backlog, so the killed gateway dies holding
	// leases on events it acknowledged.
	be.delay = 200 * time.Millisecond
	gws := startGateways(t, 3, be.URL)
	const total = 300
	acked, _, done := burst(t, gws, total)
	testwait.For(t, "a third of the burst acknowledged", func() bool { return len(acked()) >= total/3 })
	gws[1].Kill()
	done()
	ids := acked()
	t.Logf("acknowledged %d of %d around the kill -9", len(ids), total)
	killed := time.Now()
	testwait.For(t, "every acknowledged event delivered by the survivors", func() bool { return be.allDeliveredOK(ids) })
	t.Logf("all delivered %s after the kill", time.Since(killed).Round(time.Second))
}

// TestPostgresReplayOnce replays on one gateway what another delivered: the
// backend sees each replay once, from the gateway that was asked.
func TestPostgresReplayOnce(t *testing.T) {
	pgtest.DSN(t)
	be := newBackend(t)
	gws := startGateways(t, 3, be.URL)
	var ids []string
	for range 3 {
		id, body := paymentEvent(t)
		if code, answer := post(t, gws[0].BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("event: %d %v", code, answer)
		}
		ids = append(ids, id)
	}
	// The backend's 200 comes before the gateway records it: wait for the
	// store, which the status filter below reads, not for the backend.
	for _, id := range ids {
		waitStatus(t, gws[0], "/usaepay", id, "delivered")
	}

	var one replayed
	if code := adminPost(t, gws[1], "/webhooks/replay", map[string]any{"source": "/usaepay", "id": ids[0]}, &one); code != http.StatusOK {
		t.Fatalf("replay on another gateway: %d %+v", code, one)
	}
	var bulk replayed
	if code := adminPost(t, gws[2], "/webhooks/replay", map[string]any{"filter": map[string]any{"source": "/usaepay", "status": "delivered"}}, &bulk); code != http.StatusOK || bulk.Matched != 3 || bulk.Delivered != 3 {
		t.Fatalf("bulk replay on a third gateway: %d %+v", code, bulk)
	}
	for _, id := range ids {
		waitStatus(t, gws[0], "/usaepay", id, "delivered")
	}
	for i, id := range ids {
		want := 1
		if i == 0 {
			want = 2
		}
		if got, all := be.replays(id), be.count(id); got != want || all != want+1 {
			t.Errorf("event %s: %d replays of %d deliveries, want %d of %d", id, got, all, want, want+1)
		}
	}
}

// TestPostgresDatabaseRestart stops a database of its own under two running
// gateways: new webhooks get 503 while it is down (nothing is acknowledged
// that is not committed), the gateways stay up, and once it is back they
// acknowledge and deliver again by themselves, with nothing lost.
func TestPostgresDatabaseRestart(t *testing.T) {
	cluster := pgtest.NewServer(t)
	be := newBackend(t)
	be.delay = 100 * time.Millisecond // deliveries are in flight when the database goes
	gws := startGatewaysOn(t, 2, be.URL, cluster.DSN())

	before, _, done := burst(t, gws, 60)
	done()
	inFlight := len(before()) - len(be.received())
	cluster.Stop()
	down, unavailable, done := burst(t, gws, 20)
	done()
	if n := len(down()); n != 0 || unavailable.Load() != 20 {
		t.Fatalf("with the database down: %d acknowledged, %d of 20 answered 503", n, unavailable.Load())
	}
	cluster.Start()
	var after []string
	testwait.For(t, "webhooks acknowledged again", func() bool {
		acked, _, done := burst(t, gws, 16)
		done()
		after = append(after, acked()...)
		return len(after) > 0
	})
	ids := append(before(), after...)
	testwait.For(t, "every acknowledged event delivered", func() bool { return be.allDeliveredOK(ids) })
	for _, gw := range gws {
		if code, _, err := send(gw.BaseURL()+"/hooks/usaepay", []byte(`{}`), nil); err != nil || code >= 500 {
			t.Fatalf("gateway after the restart: %d %v\n%s", code, err, gw.Output())
		}
	}
	t.Logf("%d acknowledged before the stop (%d not yet delivered), %d after the restart", len(before()), inFlight, len(after))
}
