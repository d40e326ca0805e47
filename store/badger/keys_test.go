package badger

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func TestRecordValueRoundTrip(t *testing.T) {
	rec := &store.Record{
		Source: "/usaepay", ID: "e1", Provider: "usaepay", Type: "t", Status: store.StatusPending,
		ReceivedAt: time.Unix(1700000000, 0).UTC(),
		Event:      []byte(`{"specversion":"1.0","id":"e1","data":{"a":[1, 2]}}`),
		BatchSize:  1,
	}
	bodyID := bytes.Repeat([]byte{7}, bodyIDLen)
	v, err := encodeRecordValue(rec, bodyRef, bodyID)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := decodeRecordValue(v)
	if err != nil {
		t.Fatal(err)
	}
	// The event is kept byte for byte (not compacted), as it was delivered.
	if !bytes.Equal(sr.rec.Event, rec.Event) {
		t.Errorf("event = %s, want %s", sr.rec.Event, rec.Event)
	}
	if sr.rec.ID != "e1" || sr.rec.Status != store.StatusPending || !sr.rec.ReceivedAt.Equal(rec.ReceivedAt) {
		t.Errorf("metadata not kept: %+v", sr.rec)
	}
	if sr.bodyKind != bodyRef || !bytes.Equal(sr.body, bodyID) {
		t.Errorf("body = %d %q", sr.bodyKind, sr.body)
	}
	// Encoding must not clear the caller's event.
	if len(rec.Event) == 0 {
		t.Error("encodeRecordValue changed the record")
	}

	for n := 0; n < len(v)-bodyIDLen-1; n++ {
		if _, err := splitRecordValue(v[:n]); err == nil {
			t.Fatalf("a value cut at %d bytes was accepted", n)
		}
	}
	if _, err := splitRecordValue(append([]byte{1}, v[1:]...)); err == nil {
		t.Error("an unknown format version was accepted")
	}
}

// A record's deliveries and trace context survive encoding; a summary
// carries each delivery's destination and status.
func TestRecordDeliveriesRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 0).UTC()
	rec := &store.Record{
		Source: "/pay", ID: "e1", Status: store.StatusRetrying, Provider: "usaepay", Type: "t",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "gw=1",
		Deliveries: []store.Delivery{
			{Destination: "crm", Status: store.StatusRetrying, NextAttemptAt: at, Lane: "txn\x00-1", Sequence: 7,
				Attempts: []store.Attempt{{Number: 1, At: at, Status: 503}}},
			{Destination: "ledger", Status: store.StatusDead, DeadReason: store.DeadGone, Replays: 2},
		},
	}
	v, err := encodeRecordValue(rec, bodyNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := decodeRecordValue(v)
	if err != nil {
		t.Fatal(err)
	}
	got := sr.rec
	if got.TraceParent != rec.TraceParent || got.TraceState != rec.TraceState || len(got.Deliveries) != 2 ||
		got.Deliveries[0].Lane != "txn\x00-1" || got.Deliveries[0].Sequence != 7 || !got.Deliveries[0].NextAttemptAt.Equal(at) ||
		len(got.Deliveries[0].Attempts) != 1 || got.Deliveries[1].DeadReason != store.DeadGone || got.Deliveries[1].Replays != 2 {
		t.Fatalf("decoded %+v", got)
	}
	s, err := decodeSummary(encodeSummary(rec))
	if err != nil {
		t.Fatal(err)
	}
	want := []deliverySummary{{"crm", store.StatusRetrying}, {"ledger", store.StatusDead}}
	if s.status != store.StatusRetrying || s.provider != "usaepay" || s.typ != "t" || len(s.deliveries) != 2 ||
		s.deliveries[0] != want[0] || s.deliveries[1] != want[1] {
		t.Fatalf("summary %+v", s)
	}
	lane, seq, err := decodeDueValue(encodeDueValue(&rec.Deliveries[0]))
	if err != nil || lane != "txn\x00-1" || seq != 7 {
		t.Fatalf("due value: %q %d %v", lane, seq, err)
	}
	if v := encodeDueValue(&rec.Deliveries[1]); v != nil {
		t.Fatalf("an unordered delivery's due value: %q", v)
	}
}

// A lane's index entries are exactly those under its prefix, in sequence
// order, whatever bytes the lanes hold: one lane's prefix never starts
// another lane's key.
func TestLaneKeysAreUnambiguous(t *testing.T) {
	lanes := []string{"a", "a\x00", "ab", "a\x00b", "\x01a", strings.Repeat("x", 200)}
	for _, l := range lanes {
		p := laneKeyPrefix("d", l)
		for _, m := range lanes {
			k := laneKey("d", m, 1)
			if bytes.HasPrefix(k, p) != (l == m) {
				t.Fatalf("lane %q's prefix and lane %q's key", l, m)
			}
		}
		if bytes.Compare(laneKey("d", l, 2), laneKey("d", l, 10)) >= 0 {
			t.Fatalf("lane %q: sequence 2 sorts after 10", l)
		}
	}
}
