package verify

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestStandardWebhooks verifies requests signed by the official Standard
// Webhooks library.
func TestStandardWebhooks(t *testing.T) {
	const (
		oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		newSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
		other     = "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA=="
	)
	v, err := NewHMAC(HMACConfig{Format: FormatStandardWebhooks, Keys: []string{oldSecret, newSecret}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"invoice.paid","data":{"id":"in_1"}}`)
	sign := func(secret, id string, when time.Time, b []byte) string {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := wh.Sign(id, when, b)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	request := func(id string, when time.Time, sig string, b []byte) *http.Request {
		r := newRequest("/", b)
		if id != "" {
			r.Header.Set("webhook-id", id)
		}
		r.Header.Set("webhook-timestamp", strconv.FormatInt(when.Unix(), 10))
		if sig != "" {
			r.Header.Set("webhook-signature", sig)
		}
		return r
	}
	const id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
	edge := t0.Add(-DefaultTolerance)
	tests := []struct {
		name string
		r    *http.Request
		body []byte
		want error
	}{
		{"new secret", request(id, t0, sign(newSecret, id, t0, body), body), body, nil},
		{"old secret", request(id, t0, sign(oldSecret, id, t0, body), body), body, nil},
		{"sender signs with two secrets", request(id, t0, sign(other, id, t0, body)+" "+sign(newSecret, id, t0, body), body), body, nil},
		{"asymmetric entry ignored", request(id, t0, "v1a,"+base64.StdEncoding.EncodeToString(make([]byte, 64))+" "+sign(oldSecret, id, t0, body), body), body, nil},
		{"tolerance edge", request(id, edge, sign(newSecret, id, edge, body), body), body, nil},
		{"too old", request(id, edge.Add(-time.Second), sign(newSecret, id, edge.Add(-time.Second), body), body), body, ErrStale},
		{"too new", request(id, t0.Add(DefaultTolerance+time.Second), sign(newSecret, id, t0.Add(DefaultTolerance+time.Second), body), body), body, ErrStale},
		{"body tampered", request(id, t0, sign(newSecret, id, t0, body), body), []byte(`{"type":"invoice.paid","data":{"id":"in_2"}}`), ErrMismatch},
		{"id changed", request("msg_other", t0, sign(newSecret, id, t0, body), body), body, ErrMismatch},
		{"timestamp changed", request(id, t0.Add(time.Second), sign(newSecret, id, t0, body), body), body, ErrMismatch},
		{"unknown secret", request(id, t0, sign(other, id, t0, body), body), body, ErrMismatch},
		{"no id", request("", t0, sign(newSecret, id, t0, body), body), body, ErrMissing},
		{"no signature", request(id, t0, "", body), body, ErrMissing},
		{"only v1a", request(id, t0, "v1a,"+base64.StdEncoding.EncodeToString(make([]byte, 64)), body), body, ErrMalformed},
		{"no version", request(id, t0, strings.TrimPrefix(sign(newSecret, id, t0, body), "v1,"), body), body, ErrMalformed},
		{"too many signatures", request(id, t0, strings.Repeat(sign(other, id, t0, body)+" ", maxSignatures+1), body), body, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, v.Verify(tc.r, tc.body), tc.want, oldSecret, newSecret, strings.TrimPrefix(oldSecret, "whsec_"), strings.TrimPrefix(newSecret, "whsec_"))
		})
	}
	if got := v.SecretHeaders(); len(got) != 1 || got[0] != "Webhook-Signature" {
		t.Errorf("SecretHeaders = %v", got)
	}

	// The library accepts what this verifier accepts, on the real clock.
	now := time.Now()
	live, err := NewHMAC(HMACConfig{Format: FormatStandardWebhooks, Keys: []string{newSecret}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(id, now, sign(newSecret, id, now, body), body)
	wh, _ := standardwebhooks.NewWebhook(newSecret)
	if err := wh.Verify(body, r.Header); err != nil {
		t.Fatalf("library refuses the request: %v", err)
	}
	checkErr(t, live.Verify(r, body), nil)
}
