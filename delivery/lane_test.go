package delivery

import (
	"bytes"
	"encoding/json"
	"testing"

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
