package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// laneBackend is an ordered destination's backend: it answers 500 to a
// share of the requests at random, and to every request for an event id
// it is told to refuse, and records what it got in arrival order.
type laneBackend struct {
	*httptest.Server
	mu       sync.Mutex
	failRate float64
	refuse   map[string]bool
	got      []laneRequest
}

// laneRequest is one request an ordered destination's backend got.
type laneRequest struct {
	ID, Subject, Type   string
	Sequence, Partition string
	OK                  bool
}

func newLaneBackend(t *testing.T, failRate float64) *laneBackend {
	b := &laneBackend{failRate: failRate, refuse: map[string]bool{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			ID           string `json:"id"`
			Subject      string `json:"subject"`
			Type         string `json:"type"`
			Sequence     string `json:"sequence"`
			PartitionKey string `json:"partitionkey"`
		}
		_ = json.Unmarshal(body, &ev)
		b.mu.Lock()
		ok := !b.refuse[ev.ID] && rand.Float64() >= b.failRate
		b.got = append(b.got, laneRequest{ev.ID, ev.Subject, ev.Type, ev.Sequence, ev.PartitionKey, ok})
		b.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *laneBackend) setRefuse(id string, on bool) {
	b.mu.Lock()
	b.refuse[id] = on
	b.mu.Unlock()
}

func (b *laneBackend) requests() []laneRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]laneRequest(nil), b.got...)
}

func (b *laneBackend) count(id string) (all, ok int) {
	for _, r := range b.requests() {
		if r.ID == id {
			all++
			if r.OK {
				ok++
			}
		}
	}
	return all, ok
}

// orderedSite is an async payment route whose destination "ledger" is
// ordered by subject, with the given retry attempts.
func orderedSite(upstream string, attempts int) string {
	return asyncPaymentSite(`
			destination ledger {
				upstream ` + upstream + `
				workers 16
				timeout 5s
				order_by subject
				retry {
					attempts ` + fmt.Sprint(attempts) + `
					initial_delay 20ms
					max_delay 100ms
				}
				breaker {
					failures 1000
				}
			}`)
}

// checkLanes checks what an ordered backend got for the transactions
// (subject -> the event ids of the subject in acceptance order, as the
// store numbered them): every event accepted exactly once; within a
// subject, no request for an event before its predecessor was accepted;
// and the sequence and partitionkey attributes as the store numbered them.
func checkLanes(t *testing.T, reqs []laneRequest, lanes map[string][]string, seqs map[string]uint64) {
	t.Helper()
	accepted := map[string]bool{}
	for _, r := range reqs {
		ids := lanes[r.Subject]
		pos := -1
		for i, id := range ids {
			if id == r.ID {
				pos = i
			}
		}
		if pos < 0 {
			t.Fatalf("request for unknown event %s of %s", r.ID, r.Subject)
		}
		if pos > 0 && !accepted[ids[pos-1]] {
			t.Fatalf("subject %s: event %s (%s) sent before its predecessor %s was accepted", r.Subject, r.ID, r.Type, ids[pos-1])
		}
		if r.Partition != r.Subject || r.Sequence != delivery.FormatSequence(seqs[r.ID]) {
			t.Fatalf("event %s carries partitionkey %q sequence %q, want %q and %q", r.ID, r.Partition, r.Sequence, r.Subject, delivery.FormatSequence(seqs[r.ID]))
		}
		if r.OK {
			if accepted[r.ID] {
				t.Fatalf("event %s accepted twice", r.ID)
			}
			accepted[r.ID] = true
		}
	}
	for subject, ids := range lanes {
		for i, id := range ids {
			if !accepted[id] {
				t.Errorf("subject %s: event %s never accepted", subject, id)
			}
			if seqs[id] != uint64(i+1) {
				t.Errorf("subject %s: event %s has sequence %d, want %d", subject, id, seqs[id], i+1)
			}
		}
	}
}

// sendSaleAndVoid posts, for each of n transactions, its sale and its void
// at once, as the payment gateway's parallel connections do: which the
// gateway accepts first is a race. It returns each transaction's event ids
// with the type of each.
func sendSaleAndVoid(t *testing.T, urls []string, n int) (subjects []string, types map[string]string) {
	t.Helper()
	types = map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		subject := fmt.Sprintf("tx-%04d", i)
		subjects = append(subjects, subject)
		for j, typ := range []string{"transaction.sale.success", "transaction.sale.voided"} {
			id, body := paymentEventOf(t, typ, subject, "5.00")
			mu.Lock()
			types[id] = typ
			mu.Unlock()
			url := urls[(2*i+j)%len(urls)]
			wg.Go(func() {
				code, answer, err := postRetrying(t, url, body, signedHeader(body))
				if err != nil || code != http.StatusAccepted {
					t.Errorf("post %s: %d %v %v", typ, code, answer, err)
				}
			})
		}
	}
	wg.Wait()
	return subjects, types
}

// laneOrder reads, through the admin API of gw, the acceptance order of
// each subject's events: their lane sequence on the ledger destination.
func laneOrder(t *testing.T, gw *testcaddy.Instance, types map[string]string) (lanes map[string][]string, seqs map[string]uint64) {
	t.Helper()
	lanes, seqs = map[string][]string{}, map[string]uint64{}
	bySubject := map[string]map[uint64]string{}
	for id := range types {
		ev := waitEvent(t, gw, "/usaepay", id, "delivered")
		d := ev.delivery("ledger")
		if d == nil || d.Lane == "" || d.Sequence == 0 {
			t.Fatalf("event %s has no lane on the ledger: %+v", id, ev.Deliveries)
		}
		if bySubject[d.Lane] == nil {
			bySubject[d.Lane] = map[uint64]string{}
		}
		if other, dup := bySubject[d.Lane][d.Sequence]; dup {
			t.Fatalf("events %s and %s share sequence %d of lane %s", id, other, d.Sequence, d.Lane)
		}
		bySubject[d.Lane][d.Sequence] = id
		seqs[id] = d.Sequence
	}
	for lane, bySeq := range bySubject {
		for s := uint64(1); s <= uint64(len(bySeq)); s++ {
			lanes[lane] = append(lanes[lane], bySeq[s])
		}
	}
	return lanes, seqs
}

// TestOrderedLanes: the payment gateway sends each transaction's sale and
// void at once over parallel connections, for many transactions, to a
// destination ordered by subject whose backend fails a third of the
// requests at random. Each transaction's events reach the backend in the
// order the gateway accepted them, each accepted exactly once, with
// increasing sequence and the transaction as partitionkey.
func TestOrderedLanes(t *testing.T) {
	be := newLaneBackend(t, 0.3)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(orderedSite(be.URL, 1000))

	_, types := sendSaleAndVoid(t, []string{gw.BaseURL() + "/hooks/usaepay"}, 100)
	lanes, seqs := laneOrder(t, gw, types)
	checkLanes(t, be.requests(), lanes, seqs)
	failed := 0
	for _, r := range be.requests() {
		if !r.OK {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("the backend failed no request: the test did not exercise retries")
	}
}

// TestLaneParkedThenResumed: the head of a lane goes dead and parks the
// lane, the event behind it waiting; replaying the head resumes one lane,
// skipping it the other.
func TestLaneParkedThenResumed(t *testing.T) {
	be := newLaneBackend(t, 0)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(orderedSite(be.URL, 2))
	postOne := func(typ, subject string) string {
		t.Helper()
		id, body := paymentEventOf(t, typ, subject, "5.00")
		if typ == "transaction.sale.success" {
			be.setRefuse(id, true)
		}
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("post: %d %v", code, answer)
		}
		return id
	}
	saleA, voidA := postOne("transaction.sale.success", "tx-a"), postOne("transaction.sale.voided", "tx-a")
	saleB, voidB := postOne("transaction.sale.success", "tx-b"), postOne("transaction.sale.voided", "tx-b")
	waitStatus(t, gw, "/usaepay", saleA, "dead")
	waitStatus(t, gw, "/usaepay", saleB, "dead")
	// A later event of another transaction goes through: the destination
	// is delivering, and the voids behind the dead sales still wait.
	other := postOne("transaction.sale.voided", "tx-c")
	waitStatus(t, gw, "/usaepay", other, "delivered")
	for _, id := range []string{voidA, voidB} {
		if all, _ := be.count(id); all != 0 {
			t.Fatalf("void %s sent while its sale is dead (%d requests)", id, all)
		}
		if ev, _ := showEvent(t, gw, "/usaepay", id); ev.Status != "pending" {
			t.Fatalf("void %s behind a dead sale is %s, want pending", id, ev.Status)
		}
	}

	// Replaying the head, now accepted, resumes its lane.
	be.setRefuse(saleA, false)
	if code, replayed := replayByID(t, gw, map[string]any{"source": "/usaepay", "id": saleA}); code != http.StatusOK || replayed.Status != "delivered" {
		t.Fatalf("replay of the dead head: %d %+v", code, replayed)
	}
	waitStatus(t, gw, "/usaepay", voidA, "delivered")

	// Skipping the other head resumes its lane without it.
	var answer map[string]any
	if code := adminPost(t, gw, "/webhooks/skip", map[string]any{"source": "/usaepay", "id": saleB, "destination": "ledger"}, &answer); code != http.StatusOK {
		t.Fatalf("skip of the dead head: %d %+v", code, answer)
	}
	if ev, _ := showEvent(t, gw, "/usaepay", saleB); ev.delivery("ledger") == nil || ev.delivery("ledger").Status != "skipped" {
		t.Fatalf("skipped head: %+v", ev)
	}
	waitStatus(t, gw, "/usaepay", voidB, "delivered")
	if _, ok := be.count(saleB); ok != 0 {
		t.Fatal("the skipped sale was accepted")
	}
	for id, seq := range map[string]string{voidA: delivery.FormatSequence(2), voidB: delivery.FormatSequence(2)} {
		for _, r := range be.requests() {
			if r.ID == id && r.Sequence != seq {
				t.Fatalf("void %s carries sequence %q, want %q", id, r.Sequence, seq)
			}
		}
	}
}
