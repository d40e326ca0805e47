package delivery

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestReplayResultMasksSignature: a replay result, dry or not, shows the
// signature masked; the request the backend gets carries it in full.
func TestReplayResultMasksSignature(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(hit, int) (int, map[string]string) { return http.StatusOK, nil })
	signer, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fast(t, st, be.srv.URL)
	cfg.Headers = NewHeaderBuilder(signer)
	e, err := New(cfg) // not started: Replay alone sends
	if err != nil {
		t.Fatal(err)
	}
	insert(t, st, "evt-m")
	rec, err := st.Get(context.Background(), testSource, "evt-m")
	if err != nil {
		t.Fatal(err)
	}

	for _, dry := range []bool{true, false} {
		res, err := e.Replay(context.Background(), testSource, "evt-m", "", dry)
		if err != nil {
			t.Fatal(err)
		}
		unix, err := strconv.ParseInt(res.Header.Get(HeaderWebhookTimestamp), 10, 64)
		if err != nil {
			t.Fatalf("dry=%v: timestamp: %v", dry, err)
		}
		full, err := signer.Sign("evt-m", time.Unix(unix, 0), rec.Event)
		if err != nil {
			t.Fatal(err)
		}
		mac := strings.TrimPrefix(full, "v1,")
		encoded, _ := json.Marshal(res)
		if strings.Contains(string(encoded), mac) {
			t.Fatalf("dry=%v: the result carries the full signature %s:\n%s", dry, full, encoded)
		}
		if got, want := res.Header.Get(HeaderWebhookSignature), full[:len("v1,")+maskedSignatureChars]+"…"; got != want {
			t.Errorf("dry=%v: signature shown as %q, want %q", dry, got, want)
		}
	}

	hits := be.hitsFor("evt-m")
	if len(hits) != 1 {
		t.Fatalf("backend saw %d requests, want the one real replay", len(hits))
	}
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	if err := wh.Verify(hits[0].body, hits[0].header); err != nil {
		t.Errorf("the replay sent was not signed in full: %v", err)
	}
}

func TestMaskSignature(t *testing.T) {
	h := http.Header{}
	if got := MaskSignature(h); len(got) != 0 {
		t.Errorf("unsigned header: %v", got)
	}
	h.Set("Idempotency-Key", "evt-1")
	h.Set(HeaderWebhookSignature, "v1,K7fQ2xAAAABBBB= v1a,abc")
	got := MaskSignature(h)
	if want := "v1,K7fQ2x… v1a,abc…"; got.Get(HeaderWebhookSignature) != want {
		t.Errorf("masked %q, want %q", got.Get(HeaderWebhookSignature), want)
	}
	if got.Get("Idempotency-Key") != "evt-1" || h.Get(HeaderWebhookSignature) != "v1,K7fQ2xAAAABBBB= v1a,abc" {
		t.Errorf("other headers or the input changed: %v, %v", got, h)
	}
}
