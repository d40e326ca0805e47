package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func TestBodyOfAnUnorderedDeliveryIsTheEvent(t *testing.T) {
	rec := &store.Record{Event: json.RawMessage(`{"specversion":"1.0","id":"e1"}`)}
	for _, d := range []*store.Delivery{nil, {Destination: "d"}} {
		if got := Body(rec, d); !bytes.Equal(got, rec.Event) || &got[0] != &rec.Event[0] {
			t.Fatalf("unordered body %s, want the stored event itself", got)
		}
	}
}

func TestBodyOfAnOrderedDeliveryCarriesSequenceAndPartitionKey(t *testing.T) {
	rec := &store.Record{Event: json.RawMessage(`{"specversion":"1.0","id":"e1","subject":"tx \"1\""}` + "\n")}
	d := &store.Delivery{Destination: "d", Lane: `tx "1"`, Sequence: 42}
	got := Body(rec, d)
	var ev map[string]any
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatalf("body %s: %v", got, err)
	}
	if ev["sequence"] != "00000000000000000042" || ev["partitionkey"] != `tx "1"` || ev["id"] != "e1" {
		t.Fatalf("body %s", got)
	}
	if FormatSequence(9) >= FormatSequence(10) {
		t.Fatal("sequences do not order as strings")
	}
	empty := Body(&store.Record{Event: json.RawMessage(`{}`)}, d)
	if err := json.Unmarshal(empty, &ev); err != nil {
		t.Fatalf("body of an empty object %s: %v", empty, err)
	}
}

// insertLaned stores pending events of one lane, in the order given, the
// way the async handler stores those of an ordered destination.
func insertLaned(t *testing.T, st store.Store, lane string, ids ...string) {
	t.Helper()
	now := time.Now()
	for _, id := range ids {
		ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": testSource,
			"type": "transaction.sale.success", "subject": lane})
		rec := &store.Record{Source: testSource, ID: id, Provider: "usaepay", Type: "transaction.sale.success",
			ReceivedAt: now, Event: ev, BatchSize: 1, Retention: time.Hour,
			Deliveries: []store.Delivery{{Destination: testSource, Lane: lane}}}
		res, err := st.Insert(context.Background(), &store.Ingest{RawBody: ev, Records: []*store.Record{rec}}, true)
		if err != nil || !res[0].Inserted {
			t.Fatalf("inserting %s: %v %+v", id, err, res)
		}
	}
}

// A delivered head's successor is claimed at once, not at the next poll:
// with the poll an hour away and nothing else waking the engine (the
// events were stored before it started), the whole lane must still go
// out, in order.
func TestLaneSuccessorDoesNotWaitForThePoll(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, nil)
	ids := []string{"l1", "l2", "l3", "l4", "l5"}
	insertLaned(t, st, "txn-1", ids...)
	cfg := fast(t, st, be.srv.URL)
	cfg.PollInterval = time.Hour
	start(t, cfg)
	for _, id := range ids {
		waitStatus(t, st, id, store.StatusDelivered)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.hits) != len(ids) {
		t.Fatalf("%d deliveries, want %d", len(be.hits), len(ids))
	}
	for i, h := range be.hits {
		if h.id != ids[i] {
			t.Fatalf("delivery %d was %s, want %s", i, h.id, ids[i])
		}
	}
}
