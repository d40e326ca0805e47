package delivery

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestNewSigner(t *testing.T) {
	if _, err := NewSigner(testSecret); err != nil {
		t.Fatalf("valid secret: %v", err)
	}
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))
	for name, s := range map[string]string{
		"empty":      "",
		"no prefix":  strings.TrimPrefix(testSecret, "whsec_"),
		"not base64": "whsec_!!!!",
		"too short":  short,
		"only":       "whsec_",
	} {
		_, err := NewSigner(s)
		if err == nil {
			t.Errorf("%s: NewSigner accepted %q", name, s)
			continue
		}
		if s != "" && s != "whsec_" && strings.Contains(err.Error(), strings.TrimPrefix(s, "whsec_")) {
			t.Errorf("%s: error %q leaks the secret", name, err)
		}
	}
}

func TestHeaderBuilder(t *testing.T) {
	rec := &store.Record{Source: "/usaepay", ID: "evt-1", Event: []byte(`{"specversion":"1.0","id":"evt-1"}`)}
	now := time.Now()

	plain := NewHeaderBuilder(nil).Build(rec, 1, false, now)
	want := map[string]string{
		"Content-Type":    "application/cloudevents+json",
		"Idempotency-Key": "evt-1",
		"Webhook-Attempt": "1",
		"User-Agent":      UserAgent,
	}
	for k, v := range want {
		if got := plain.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{HeaderReplay, HeaderWebhookID, HeaderWebhookSignature, HeaderWebhookTimestamp} {
		if plain.Get(k) != "" {
			t.Errorf("unsigned first attempt carries %s", k)
		}
	}

	signer, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	signed := NewHeaderBuilder(signer).Build(rec, 3, true, now)
	if signed.Get(HeaderReplay) != "true" || signed.Get(HeaderAttempt) != "3" {
		t.Errorf("replay headers: %v", signed)
	}
	if signed.Get(HeaderWebhookID) != "evt-1" || !strings.HasPrefix(signed.Get(HeaderWebhookSignature), "v1,") {
		t.Errorf("signature headers: %v", signed)
	}
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(rec.Event, signed); err != nil {
		t.Fatalf("standard-webhooks Verify: %v", err)
	}
	if err := wh.Verify(append([]byte(" "), rec.Event...), signed); err == nil {
		t.Fatal("signature verified over a different body")
	}
	// The sync path hands the header to reverse_proxy as a plain map; the
	// library must verify it after a round trip through canonical keys.
	wire := http.Header{}
	for k, v := range signed {
		wire[strings.ToLower(k)] = v
	}
	if err := wh.Verify(rec.Event, http.Header(canonical(wire))); err != nil {
		t.Fatalf("Verify after header round trip: %v", err)
	}
}

func canonical(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		for _, x := range v {
			out.Add(k, x)
		}
	}
	return out
}

func BenchmarkBuild(b *testing.B) {
	rec := &store.Record{Source: "/usaepay", ID: "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
		Event: make([]byte, 1<<10)}
	signer, err := NewSigner(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	for name, hb := range map[string]*HeaderBuilder{"unsigned": NewHeaderBuilder(nil), "signed-1KB": NewHeaderBuilder(signer)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				_ = hb.Build(rec, 1, false, now)
			}
		})
	}
}
