package verify

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// t0 is the verifiers' clock in these tests.
var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func at(offset time.Duration) string { return strconv.FormatInt(t0.Add(offset).Unix(), 10) }

func clock() time.Time { return t0 }

// The loyalty platform's hosted sender, configured as a Stripe-like join of
// timestamp and body (which bytes it signs is not documented).
func TestHMACTimestamp(t *testing.T) {
	body := []byte(`{"type":"CustomerRegistered","data":{"customerId":"c1"}}`)
	keys := []string{"whsec_old", "whsec_new"}
	v, err := NewHMAC(HMACConfig{
		Header:          "X-Webhook-Signature",
		TimestampHeader: "x-webhook-timestamp",
		SignedContent:   "{timestamp}.{body}",
		AlgorithmHeader: "X-Webhook-Signature-Algorithm",
		Keys:            keys,
		Now:             clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key, ts string, b []byte) string {
		return hex.EncodeToString(mac(sha256.New, key, []byte(ts+"."+string(b))))
	}
	now := at(0)
	tests := []struct {
		name    string
		headers []string
		body    []byte
		want    error
	}{
		{"now", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body)}, body, nil},
		{"rotated key", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_old", now, body)}, body, nil},
		{"tolerance edge past", []string{"X-Webhook-Timestamp", at(-5 * time.Minute), "X-Webhook-Signature", sign("whsec_new", at(-5*time.Minute), body)}, body, nil},
		{"tolerance edge future", []string{"X-Webhook-Timestamp", at(5 * time.Minute), "X-Webhook-Signature", sign("whsec_new", at(5*time.Minute), body)}, body, nil},
		{"one second too old", []string{"X-Webhook-Timestamp", at(-5*time.Minute - time.Second), "X-Webhook-Signature", sign("whsec_new", at(-5*time.Minute-time.Second), body)}, body, ErrStale},
		{"one second too new", []string{"X-Webhook-Timestamp", at(5*time.Minute + time.Second), "X-Webhook-Signature", sign("whsec_new", at(5*time.Minute+time.Second), body)}, body, ErrStale},
		{"a day old", []string{"X-Webhook-Timestamp", at(-24 * time.Hour), "X-Webhook-Signature", sign("whsec_old", at(-24*time.Hour), body)}, body, ErrStale},
		{"timestamp moved forward", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", at(-time.Hour), body)}, body, ErrMismatch},
		// A forged stale request is reported as forged, not as stale.
		{"stale and forged", []string{"X-Webhook-Timestamp", at(-time.Hour), "X-Webhook-Signature", sign("other", at(-time.Hour), body)}, body, ErrMismatch},
		{"body only signed", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", hex.EncodeToString(mac(sha256.New, "whsec_new", body))}, body, ErrMismatch},
		{"body changed", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body)}, []byte(`{}`), ErrMismatch},
		{"algorithm named", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body), "X-Webhook-Signature-Algorithm", "HMAC-SHA256"}, body, nil},
		{"algorithm lower case", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body), "X-Webhook-Signature-Algorithm", "sha-256"}, body, nil},
		{"other algorithm", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body), "X-Webhook-Signature-Algorithm", "HMAC-SHA1"}, body, ErrMismatch},
		{"algorithm repeated", []string{"X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body), "X-Webhook-Signature-Algorithm", "sha256", "X-Webhook-Signature-Algorithm", "sha256"}, body, ErrMalformed},
		{"no timestamp", []string{"X-Webhook-Signature", sign("whsec_new", now, body)}, body, ErrMissing},
		{"empty timestamp", []string{"X-Webhook-Timestamp", "", "X-Webhook-Signature", sign("whsec_new", "", body)}, body, ErrMissing},
		{"timestamp repeated", []string{"X-Webhook-Timestamp", now, "X-Webhook-Timestamp", now, "X-Webhook-Signature", sign("whsec_new", now, body)}, body, ErrMalformed},
		{"milliseconds", []string{"X-Webhook-Timestamp", now + "000", "X-Webhook-Signature", sign("whsec_new", now+"000", body)}, body, ErrMalformed},
		{"signed number", []string{"X-Webhook-Timestamp", "+" + now, "X-Webhook-Signature", sign("whsec_new", "+"+now, body)}, body, ErrMalformed},
		{"fraction", []string{"X-Webhook-Timestamp", now + ".5", "X-Webhook-Signature", sign("whsec_new", now+".5", body)}, body, ErrMalformed},
		{"date", []string{"X-Webhook-Timestamp", t0.Format(time.RFC3339), "X-Webhook-Signature", sign("whsec_new", t0.Format(time.RFC3339), body)}, body, ErrMalformed},
		{"no signature", []string{"X-Webhook-Timestamp", now}, body, ErrMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(newRequest("/hook", tc.body, tc.headers...), tc.body)
			checkErr(t, err, tc.want, "whsec_old", "whsec_new")
		})
	}
	if got := v.SecretHeaders(); len(got) != 1 || got[0] != "X-Webhook-Signature" {
		t.Errorf("SecretHeaders = %v", got)
	}
}

// A sender that signs the body alone but sends a timestamp: the timestamp
// still bounds how long a captured request can be re-sent as is.
func TestHMACTimestampBodyOnly(t *testing.T) {
	body := []byte(`{"a":1}`)
	v, err := NewHMAC(HMACConfig{TimestampHeader: "X-Webhook-Timestamp", Tolerance: time.Minute, Keys: []string{"body-key"}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sig := hex.EncodeToString(mac(sha256.New, "body-key", body))
	for _, tc := range []struct {
		ts   string
		want error
	}{
		{at(0), nil},
		{at(-time.Minute), nil},
		{at(-time.Minute - time.Second), ErrStale},
		{at(time.Minute + time.Second), ErrStale},
	} {
		err := v.Verify(newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", tc.ts), body)
		checkErr(t, err, tc.want, "body-key")
	}
}

func TestHMACSignedContentHeaders(t *testing.T) {
	body := []byte(`{"a":1}`)
	v, err := NewHMAC(HMACConfig{
		TimestampHeader: "X-Webhook-Timestamp",
		SignedContent:   "{header.X-Webhook-Request-Id}:{timestamp}:{body}",
		Encoding:        "base64",
		Keys:            []string{"k"},
		Now:             clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	const id = "5f0c8d9e-7b0a-4c55-9d0e-1e2f3a4b5c6d"
	sig := base64.StdEncoding.EncodeToString(mac(sha256.New, "k", []byte(id+":"+at(0)+":"+string(body))))
	checkErr(t, v.Verify(newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", at(0), "X-Webhook-Request-Id", id), body), nil)
	long, err := NewHMAC(HMACConfig{
		TimestampHeader: "X-Webhook-Timestamp",
		SignedContent:   "{http.request.header.x-webhook-request-id}:{timestamp}:{body}",
		Encoding:        "base64",
		Keys:            []string{"k"},
		Now:             clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, long.Verify(newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", at(0), "X-Webhook-Request-Id", id), body), nil)
	checkErr(t, v.Verify(newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", at(0), "X-Webhook-Request-Id", "other"), body), ErrMismatch)
	err = v.Verify(newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", at(0)), body)
	checkErr(t, err, ErrMissing)
	if !strings.Contains(err.Error(), "X-Webhook-Request-Id") {
		t.Errorf("error %q does not name the missing header", err)
	}
}

func TestHMACStripeFormat(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	v, err := NewHMAC(HMACConfig{Format: "stripe", Keys: []string{"whsec_live", "whsec_next"}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key, ts string) string {
		return hex.EncodeToString(mac(sha256.New, key, []byte(ts+"."+string(body))))
	}
	now, old := at(0), at(-6*time.Minute)
	tests := []struct {
		name, header string
		want         error
	}{
		{"one signature", "t=" + now + ",v1=" + sign("whsec_live", now), nil},
		{"rotation, second entry", "t=" + now + ",v1=" + sign("other", now) + ",v1=" + sign("whsec_next", now), nil},
		{"test-mode v0 ignored", "t=" + now + ",v1=" + sign("whsec_live", now) + ",v0=" + sign("x", now), nil},
		{"spaces and unreadable v1 skipped", "t=" + now + ", v1=zz, v1=" + sign("whsec_live", now), nil},
		{"stale", "t=" + old + ",v1=" + sign("whsec_live", old), ErrStale},
		{"timestamp swapped", "t=" + now + ",v1=" + sign("whsec_live", old), ErrMismatch},
		{"unknown key", "t=" + now + ",v1=" + sign("other", now), ErrMismatch},
		{"no t", "v1=" + sign("whsec_live", now), ErrMalformed},
		{"t twice", "t=" + now + ",t=" + now + ",v1=" + sign("whsec_live", now), ErrMalformed},
		{"no v1", "t=" + now + ",v0=" + sign("whsec_live", now), ErrMalformed},
		{"only unreadable v1", "t=" + now + ",v1=" + sign("whsec_live", now)[:10], ErrMalformed},
		{"entry without =", "t=" + now + "," + sign("whsec_live", now), ErrMalformed},
		{"t not a number", "t=soon,v1=" + sign("whsec_live", "soon"), ErrMalformed},
		{"too many signatures", "t=" + now + strings.Repeat(",v1="+sign("other", now), maxSignatures+1), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(newRequest("/", body, "Stripe-Signature", tc.header), body)
			checkErr(t, err, tc.want, "whsec_live", "whsec_next")
		})
	}
}

func TestHMACKeyEncoding(t *testing.T) {
	body := []byte(`{}`)
	raw := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	decoded := hex.EncodeToString(mac(sha256.New, string(raw), body))
	asWritten := hex.EncodeToString(mac(sha256.New, secret, body))
	for _, tc := range []struct {
		encoding, sig string
		want          error
	}{
		{"", asWritten, nil},
		{"raw", asWritten, nil},
		{"raw", decoded, ErrMismatch},
		{"base64", decoded, nil},
		{"base64", asWritten, ErrMismatch},
	} {
		v, err := NewHMAC(HMACConfig{KeyEncoding: tc.encoding, Keys: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		checkErr(t, v.Verify(newRequest("/", body, "X-Signature", tc.sig), body), tc.want, secret)
	}
	// The prefix is optional, as in the Standard Webhooks libraries.
	v, err := NewHMAC(HMACConfig{KeyEncoding: "base64", Keys: []string{base64.StdEncoding.EncodeToString(raw)}})
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, v.Verify(newRequest("/", body, "X-Signature", decoded), body), nil)
}

func TestHMACTimestampConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  HMACConfig
		want string
	}{
		{"unknown format", HMACConfig{Format: "github"}, "unknown format"},
		{"prefix outside plain", HMACConfig{Format: "stripe", Prefix: "v1="}, "prefix"},
		{"stripe with timestamp header", HMACConfig{Format: "stripe", TimestampHeader: "X-Ts"}, "timestamp_header"},
		{"timestamp without header", HMACConfig{SignedContent: "{timestamp}.{body}"}, "no timestamp header"},
		{"unknown placeholder", HMACConfig{TimestampHeader: "X-Ts", SignedContent: "{ts}.{body}"}, "unknown placeholder {ts}"},
		{"body twice", HMACConfig{SignedContent: "{body}{body}"}, "exactly once"},
		{"no body", HMACConfig{TimestampHeader: "X-Ts", SignedContent: "{timestamp}"}, "exactly once"},
		{"unclosed", HMACConfig{SignedContent: "{body"}, "unclosed"},
		{"bad header placeholder", HMACConfig{SignedContent: "{header.a b}.{body}"}, "valid header name"},
		{"negative tolerance", HMACConfig{TimestampHeader: "X-Ts", Tolerance: -time.Second}, "negative"},
		{"tolerance without timestamp", HMACConfig{Tolerance: time.Minute}, "needs a timestamp"},
		{"bad timestamp header", HMACConfig{TimestampHeader: "X Ts"}, "not a valid header name"},
		{"bad algorithm header", HMACConfig{AlgorithmHeader: "X:Alg"}, "not a valid header name"},
		{"unknown key encoding", HMACConfig{KeyEncoding: "hex"}, "key encoding"},
		{"standard webhooks hex", HMACConfig{Format: "standard_webhooks", Encoding: "hex"}, "base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Keys = []string{"k"}
			_, err := NewHMAC(tc.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewHMAC(%+v) = %v, want ErrConfig mentioning %q", tc.cfg, err, tc.want)
			}
		})
	}
	_, err := NewHMAC(HMACConfig{KeyEncoding: "base64", Keys: []string{"whsec_not*base64"}})
	if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "not*base64") {
		t.Fatalf("bad base64 key: %v, want ErrConfig that does not quote the key", err)
	}
}

// The sha1 variant with a timestamp: the algorithm header is compared
// with the configured hash, whatever it is.
func TestHMACAlgorithmHeaderSHA1(t *testing.T) {
	body := []byte(`x`)
	v, err := NewHMAC(HMACConfig{Hash: "sha1", AlgorithmHeader: "X-Alg", Keys: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	sig := hex.EncodeToString(mac(sha1.New, "k", body))
	checkErr(t, v.Verify(newRequest("/", body, "X-Signature", sig, "X-Alg", "hmac_sha1"), body), nil)
	checkErr(t, v.Verify(newRequest("/", body, "X-Signature", sig, "X-Alg", "sha256"), body), ErrMismatch)
}

func BenchmarkHMACTimestamped(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1<<10)
	v, err := NewHMAC(HMACConfig{TimestampHeader: "X-Webhook-Timestamp", SignedContent: "{timestamp}.{body}", Keys: []string{"key-one"}})
	if err != nil {
		b.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := hex.EncodeToString(mac(sha256.New, "key-one", append([]byte(ts+"."), body...)))
	r := newRequest("/", body, "X-Signature", sig, "X-Webhook-Timestamp", ts)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStandardWebhooks(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1<<10)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	v, err := NewHMAC(HMACConfig{Format: FormatStandardWebhooks, Keys: []string{secret}})
	if err != nil {
		b.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := "v1," + base64.StdEncoding.EncodeToString(mac(sha256.New, "0123456789abcdef0123456789abcdef", []byte("msg_1."+ts+"."+string(body))))
	r := newRequest("/", body, "Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", sig)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

// Tolerance and SignsHeader tell the gateway how long a captured request
// passes again and whether a request id can be rewritten without the key.
func TestHMACToleranceAndSignedHeaders(t *testing.T) {
	cases := []struct {
		name      string
		cfg       HMACConfig
		tolerance time.Duration
		signed    []string
		unsigned  []string
	}{
		{"body only", HMACConfig{}, 0, nil, []string{"X-Webhook-Request-Id"}},
		{"timestamp header", HMACConfig{TimestampHeader: "X-Webhook-Timestamp", SignedContent: "{timestamp}.{body}"},
			DefaultTolerance, nil, []string{"X-Webhook-Request-Id", "X-Webhook-Timestamp"}},
		{"request id signed", HMACConfig{TimestampHeader: "X-Webhook-Timestamp", Tolerance: time.Minute,
			SignedContent: "{header.X-Webhook-Request-Id}.{timestamp}.{body}"},
			time.Minute, []string{"X-Webhook-Request-Id", "x-webhook-request-id"}, []string{"X-Request-Id"}},
		{"stripe", HMACConfig{Format: FormatStripe, Tolerance: 10 * time.Minute}, 10 * time.Minute, nil, []string{"Stripe-Signature"}},
		{"standard webhooks", HMACConfig{Format: FormatStandardWebhooks, Keys: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("k"))}},
			DefaultTolerance, []string{"webhook-id"}, []string{"Webhook-Timestamp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Keys == nil {
				c.cfg.Keys = []string{"k"}
			}
			v, err := NewHMAC(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Tolerance(); got != c.tolerance {
				t.Errorf("Tolerance() = %s, want %s", got, c.tolerance)
			}
			for _, h := range c.signed {
				if !v.SignsHeader(h) {
					t.Errorf("SignsHeader(%q) = false", h)
				}
			}
			for _, h := range c.unsigned {
				if v.SignsHeader(h) {
					t.Errorf("SignsHeader(%q) = true", h)
				}
			}
		})
	}
}
