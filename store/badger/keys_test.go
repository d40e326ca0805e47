package badger

import (
	"bytes"
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
