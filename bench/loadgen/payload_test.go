package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"testing"
	"time"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestPayloadsAreValidSignedUniqueEvents(t *testing.T) {
	key := []byte("bench-signature-key")
	for _, size := range []int{1024, 12 * 1024, 64 * 1024} {
		p, err := NewPayloads(key, size)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.BodySize(); got < size*9/10 || got > size*11/10 {
			t.Fatalf("size %d: body is %d bytes, want within 10%%", size, got)
		}
		seen := map[string]bool{}
		for range 2000 {
			ev := p.Next()
			body := p.Body(ev)
			if len(body) != p.BodySize() {
				t.Fatalf("size %d: body %d bytes, BodySize says %d", size, len(body), p.BodySize())
			}

			var env struct {
				Type           string          `json:"type"`
				EventTriggered string          `json:"event_triggered"`
				EventType      string          `json:"event_type"`
				EventID        string          `json:"event_id"`
				EventBody      json.RawMessage `json:"event_body"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("size %d: invalid JSON: %v\n%s", size, err, body)
			}
			if env.Type != "event" || env.EventType != "transaction.sale.success" || len(env.EventBody) == 0 {
				t.Fatalf("size %d: envelope %+v", size, env)
			}
			if _, err := time.Parse("2006-01-02 15:04:05", env.EventTriggered); err != nil {
				t.Fatalf("event_triggered: %v", err)
			}
			if env.EventID != ev.ID() || !hexID.MatchString(env.EventID) {
				t.Fatalf("event_id %q, Event.ID %q", env.EventID, ev.ID())
			}
			if seen[env.EventID] {
				t.Fatalf("event_id %s repeated", env.EventID)
			}
			seen[env.EventID] = true

			mac := hmac.New(sha256.New, key)
			mac.Write(body)
			if want := hex.EncodeToString(mac.Sum(nil)); ev.Signature != want {
				t.Fatalf("signature %s, want %s", ev.Signature, want)
			}
		}
	}
}

func TestPayloadsHitTheTargetSizeExactly(t *testing.T) {
	for size := minBodySize + len(`,"notes":""`); size < 4096; size += 37 {
		p, err := NewPayloads([]byte("k"), size)
		if err != nil {
			t.Fatal(err)
		}
		body := p.Body(p.Next())
		if len(body) != size {
			t.Fatalf("target %d: got %d", size, len(body))
		}
		if !json.Valid(body) {
			t.Fatalf("target %d: invalid JSON %s", size, body)
		}
	}
}

func TestPayloadsBelowTheMinimumStayValid(t *testing.T) {
	p, err := NewPayloads([]byte("k"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if body := p.Body(p.Next()); !json.Valid(body) || len(body) != minBodySize {
		t.Fatalf("got %d bytes (min %d): %s", len(body), minBodySize, body)
	}
}

func TestLatencyPercentiles(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[len(d)-1-i] = time.Duration(i+1) * time.Millisecond
	}
	l := latencies(d)
	if l.P50 != 500 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 || l.Mean != 500.5 {
		t.Fatalf("%+v", l)
	}
}
