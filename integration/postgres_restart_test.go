package integration

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// restartSchema holds the gateway's tables in the test's own cluster.
const restartSchema = "gateway"

// restartSite is an async payment route at /hooks/usaepay and a sync one at
// /hooks/usaepay-sync in front of reverse_proxy, on the postgres store
// named by TEST_PG_DSN. The 10s timeout makes the async lease 40s: an
// outcome given up would be sent again only after that, so a delivery
// doubled by a restart cannot be mistaken for a timed-out one.
func restartSite(be *backend) string {
	route := func(path, opts, after string) string {
		return `
	route ` + path + ` {
		webhook_gateway usaepay {
			store postgres {env.TEST_PG_DSN} {
				schema ` + restartSchema + `
			}
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			timeout 10s
			` + opts + `
		}
		` + after + `
	}`
	}
	return `http://127.0.0.1:{{PORT}} {` +
		route("/hooks/usaepay", "upstream "+be.URL+"\n\t\t\tworkers 8\n\t\t\tretry {\n\t\t\t\t"+fastRetry+"\n\t\t\t}", "") +
		route("/hooks/usaepay-sync", "deliver sync", "reverse_proxy "+be.host()) + `
}
`
}

// gate holds the backend's requests while closed, so that deliveries are
// in flight when the database stops, and answered once it is down.
type gate struct {
	mu      sync.Mutex
	closed  chan struct{} // nil while open
	entered int           // requests that found the gate closed
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	c := g.closed
	if c != nil {
		g.entered++
	}
	g.mu.Unlock()
	if c != nil {
		<-c
	}
}

func (g *gate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entered
}

// gatedBackend is a backend whose requests pass a gate before it records
// and answers them.
func gatedBackend(t *testing.T) (*backend, *gate) {
	be := newUnstartedBackend(t)
	g := &gate{}
	t.Cleanup(g.release) // before the server's Close, which waits for handlers
	inner := be.Config.Handler
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.wait()
		inner.ServeHTTP(w, r)
	})
	be.Start()
	return be, g
}

// startOnServer starts a gateway on restartSite with its store in srv.
func startOnServer(t *testing.T, srv *pgtest.Server, be *backend) *testcaddy.Instance {
	gw := testcaddy.New(t, append(append([]string(nil), gatewayEnv...), "TEST_PG_DSN="+srv.DSN())...)
	gw.Start(restartSite(be))
	return gw
}

// storedStatuses returns the status of every stored event by id, or nil
// while the database cannot be read.
func storedStatuses(t *testing.T, srv *pgtest.Server) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.DSN())
	if err != nil {
		return nil
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, status FROM `+restartSchema+`.events`)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for rows.Next() {
		var id []byte
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil
		}
		out[string(id)] = status
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}

// sender posts new payment events to url from four senders until stopped,
// keeping the ids answered 202 and counting the 503s.
type sender struct {
	mu          sync.Mutex
	acked       []string
	unavailable int
	other       []int
	quit        chan struct{}
	wg          sync.WaitGroup
}

func startSender(t *testing.T, url string) *sender {
	s := &sender{quit: make(chan struct{})}
	client := &http.Client{Timeout: 15 * time.Second}
	for range 4 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.quit:
					return
				default:
				}
				id, body := paymentEvent(t)
				req, _ := http.NewRequest(http.MethodPost, url, bytesReader(body))
				req.Header = signedHeader(body)
				resp, err := client.Do(req)
				if err != nil {
					continue // no answer: not acknowledged
				}
				resp.Body.Close()
				s.mu.Lock()
				switch resp.StatusCode {
				case http.StatusAccepted:
					s.acked = append(s.acked, id)
				case http.StatusServiceUnavailable:
					s.unavailable++
				default:
					s.other = append(s.other, resp.StatusCode)
				}
				s.mu.Unlock()
			}
		}()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *sender) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	s.wg.Wait()
}

func (s *sender) counts() (acked, unavailable int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked), s.unavailable
}

// TestPostgresRestartsDeliverEachEventOnce restarts the database three
// times under an async route that keeps receiving events, each time with
// deliveries held at the backend until the database is down, so that the
// backend accepts them while their outcome cannot be recorded. Every
// acknowledged event is delivered exactly once: the outcome is recorded
// once the database is back, within the lease, instead of the event being
// sent again when the lease runs out.
func TestPostgresRestartsDeliverEachEventOnce(t *testing.T) {
	srv := pgtest.NewServer(t)
	be, g := gatedBackend(t)
	gw := startOnServer(t, srv, be)
	s := startSender(t, gw.BaseURL()+"/hooks/usaepay")

	const restarts = 3
	for i := range restarts {
		testwait.For(t, "events acknowledged before the restart", func() bool {
			acked, _ := s.counts()
			return acked >= (i+1)*30
		})
		held := g.held()
		g.hold()
		testwait.For(t, "a delivery in flight at the backend", func() bool { return g.held() > held })
		srv.Stop()
		_, refused := s.counts()
		g.release() // the backend accepts them now, with the database down
		testwait.For(t, "a webhook refused with the database down", func() bool {
			_, n := s.counts()
			return n > refused
		})
		srv.Start()
	}
	last, _ := s.counts()
	testwait.For(t, "events acknowledged after the last restart", func() bool {
		acked, _ := s.counts()
		return acked >= last+30
	})
	s.stop()
	s.mu.Lock()
	ids, other := append([]string(nil), s.acked...), s.other
	s.mu.Unlock()
	if len(other) > 0 {
		t.Errorf("answers other than 202 and 503: %v", other)
	}

	// Delivered at the backend, and recorded delivered: nothing is left
	// that could be sent again.
	testwait.For(t, "every acknowledged event delivered and recorded", func() bool {
		if !be.allDeliveredOK(ids) {
			return false
		}
		statuses := storedStatuses(t, srv)
		if statuses == nil {
			return false
		}
		for _, status := range statuses {
			if status != "delivered" {
				return false
			}
		}
		return true
	})
	perID := map[string]int{}
	for _, r := range be.received() {
		id, _ := r.Event["id"].(string)
		perID[id]++
	}
	for id, n := range perID {
		if n != 1 {
			t.Errorf("event %s reached the backend %d times", id, n)
		}
	}
	retried := strings.Count(gw.Output(), "recording delivery attempt failed; trying again while the lease lasts")
	if retried == 0 {
		t.Error("no outcome was recorded late: the restarts caught no delivery between its answer and its record")
	}
	t.Logf("%d events acknowledged, %d reached the backend, %d held across %d restarts, %d record retries",
		len(ids), len(perID), g.held(), restarts, retried)
}

// TestPostgresRestartSyncDeliveryRecordedLater: the backend answers 2xx to
// a sync delivery while the database is down. The provider gets 200
// delivered (not 502, which would have it retry into a second copy), its
// retry meanwhile cannot be stored (503), and once the database is back the
// delivery is recorded and the retry is a duplicate: the backend has the
// event once.
func TestPostgresRestartSyncDeliveryRecordedLater(t *testing.T) {
	srv := pgtest.NewServer(t)
	be, g := gatedBackend(t)
	gw := startOnServer(t, srv, be)
	url := gw.BaseURL() + "/hooks/usaepay-sync"
	id, body := paymentEvent(t)

	type result struct {
		code   int
		answer map[string]any
		err    error
	}
	first := make(chan result, 1)
	g.hold()
	go func() {
		code, answer, err := send(url, body, signedHeader(body))
		first <- result{code, answer, err}
	}()
	testwait.For(t, "the forward at the backend", func() bool { return g.held() == 1 })
	srv.Stop()
	g.release()
	r := <-first
	if r.err != nil || r.code != http.StatusOK || r.answer["status"] != "delivered" {
		t.Fatalf("backend answered 2xx with the database down: %d %v %v, want 200 delivered\n%s", r.code, r.answer, r.err, gw.Output())
	}
	if code, answer, err := send(url, body, signedHeader(body)); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("retry with the database down: %d %v %v, want 503", code, answer, err)
	}

	srv.Start()
	testwait.For(t, "the delivery recorded once the database is back", func() bool {
		return storedStatuses(t, srv)[id] == "delivered"
	})
	code, answer := post(t, url, body, signedHeader(body))
	if code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("retry once recorded: %d %v, want 200 duplicate", code, answer)
	}
	if n := be.count(id); n != 1 {
		t.Fatalf("the backend got the event %d times, want once", n)
	}
	if !strings.Contains(gw.Output(), "sync delivery recorded after the store came back") {
		t.Errorf("the late record is not logged:\n%s", gw.Output())
	}
}
