package verify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newRequest(target string, body []byte, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// checkErr asserts err wraps want (nil for success) and that the message
// leaks none of the given strings.
func checkErr(t *testing.T, err, want error, secrets ...string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("Verify: unexpected error %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("Verify: got %v, want an error wrapping %v", err, want)
	}
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q leaks %q", err, s)
		}
	}
}

func TestHeader(t *testing.T) {
	v, err := NewHeader("x-loyalty-token", "old-token-1", "new-token-2")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		headers []string
		want    error
	}{
		{"first secret", []string{"X-Loyalty-Token", "old-token-1"}, nil},
		{"rotated secret", []string{"X-Loyalty-Token", "new-token-2"}, nil},
		{"header name case-insensitive", []string{"x-LOYALTY-token", "new-token-2"}, nil},
		{"wrong value", []string{"X-Loyalty-Token", "guess"}, ErrMismatch},
		{"prefix of secret", []string{"X-Loyalty-Token", "old-token"}, ErrMismatch},
		{"secret plus suffix", []string{"X-Loyalty-Token", "old-token-1x"}, ErrMismatch},
		{"value case matters", []string{"X-Loyalty-Token", "OLD-TOKEN-1"}, ErrMismatch},
		{"missing", nil, ErrMissing},
		{"empty", []string{"X-Loyalty-Token", ""}, ErrMissing},
		{"other header", []string{"X-Other", "old-token-1"}, ErrMissing},
		{"repeated", []string{"X-Loyalty-Token", "guess", "X-Loyalty-Token", "old-token-1"}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(newRequest("/hook", nil, tc.headers...), nil)
			checkErr(t, err, tc.want, "old-token-1", "new-token-2", "guess")
			if err != nil && !strings.Contains(err.Error(), "X-Loyalty-Token") {
				t.Errorf("error %q does not name the header", err)
			}
		})
	}
	if got := v.SecretHeaders(); len(got) != 1 || got[0] != "X-Loyalty-Token" {
		t.Errorf("SecretHeaders = %v", got)
	}
}

func TestHeaderConfig(t *testing.T) {
	tests := []struct {
		name   string
		header string
		values []string
	}{
		{"no values", "X-Token", nil},
		{"empty value", "X-Token", []string{"a", ""}},
		{"no header", "", []string{"a"}},
		{"bad header name", "X Token", []string{"a"}},
		{"padded value", "X-Token", []string{" a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHeader(tc.header, tc.values...); !errors.Is(err, ErrConfig) {
				t.Fatalf("NewHeader: got %v, want ErrConfig", err)
			}
		})
	}
}

func TestBasic(t *testing.T) {
	v, err := NewBasic(
		Credential{Username: "usaepay", Password: "pa:ss:word"},
		Credential{Username: "rotated", Password: "s3cret"},
	)
	if err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name string
		auth []string
		want error
	}{
		{"first pair, colons in password", []string{"Authorization", basic("usaepay", "pa:ss:word")}, nil},
		{"rotated pair", []string{"Authorization", basic("rotated", "s3cret")}, nil},
		{"scheme case-insensitive", []string{"Authorization", "basic " + base64.StdEncoding.EncodeToString([]byte("rotated:s3cret"))}, nil},
		{"wrong password", []string{"Authorization", basic("usaepay", "pa:ss")}, ErrMismatch},
		{"crossed pairs", []string{"Authorization", basic("usaepay", "s3cret")}, ErrMismatch},
		{"wrong user", []string{"Authorization", basic("nobody", "s3cret")}, ErrMismatch},
		{"empty password", []string{"Authorization", basic("rotated", "")}, ErrMismatch},
		{"missing", nil, ErrMissing},
		{"bearer", []string{"Authorization", "Bearer s3cret"}, ErrMalformed},
		{"bad base64", []string{"Authorization", "Basic !!!"}, ErrMalformed},
		{"no colon", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("rotateds3cret"))}, ErrMalformed},
		{"repeated", []string{"Authorization", basic("x", "y"), "Authorization", basic("rotated", "s3cret")}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(newRequest("/hook", nil, tc.auth...), nil)
			checkErr(t, err, tc.want, "pa:ss", "s3cret", "usaepay", "rotated", "nobody")
		})
	}
	if got := v.SecretHeaders(); len(got) != 1 || got[0] != "Authorization" {
		t.Errorf("SecretHeaders = %v", got)
	}
}

func TestBasicConfig(t *testing.T) {
	for _, creds := range [][]Credential{
		nil,
		{{Username: "", Password: "p"}},
		{{Username: "u", Password: ""}},
		{{Username: "u:x", Password: "p"}},
		{{Username: "u", Password: "p"}, {}},
	} {
		if _, err := NewBasic(creds...); !errors.Is(err, ErrConfig) {
			t.Errorf("NewBasic(%v): got %v, want ErrConfig", creds, err)
		}
	}
}

func mac(newHash func() hash.Hash, key string, body []byte) []byte {
	h := hmac.New(newHash, []byte(key))
	h.Write(body)
	return h.Sum(nil)
}

func TestHMAC(t *testing.T) {
	body := []byte(`{"type":"event","event_type":"transaction.sale.success","event_id":"abc"}`)
	keys := []string{"key-one", "key-two"}
	sig1 := hex.EncodeToString(mac(sha256.New, "key-one", body))
	sig2 := hex.EncodeToString(mac(sha256.New, "key-two", body))
	other := hex.EncodeToString(mac(sha256.New, "key-three", body))

	def, err := NewHMAC(HMACConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		headers []string
		body    []byte
		want    error
	}{
		{"first key", []string{"X-Signature", sig1}, body, nil},
		{"rotated key", []string{"X-Signature", sig2}, body, nil},
		// Hex is case-insensitive by decision: the case carries no bits.
		{"uppercase hex", []string{"X-Signature", strings.ToUpper(sig2)}, body, nil},
		{"surrounding space", []string{"X-Signature", " " + sig1 + " "}, body, nil},
		{"unknown key", []string{"X-Signature", other}, body, ErrMismatch},
		{"body changed", []string{"X-Signature", sig1}, append(append([]byte{}, body...), ' '), ErrMismatch},
		{"empty body", []string{"X-Signature", sig1}, nil, ErrMismatch},
		{"missing", nil, body, ErrMissing},
		{"empty", []string{"X-Signature", ""}, body, ErrMissing},
		{"not hex", []string{"X-Signature", strings.Repeat("zz", 32)}, body, ErrMalformed},
		{"odd length", []string{"X-Signature", sig1[:63]}, body, ErrMalformed},
		{"truncated", []string{"X-Signature", sig1[:40]}, body, ErrMalformed},
		{"too long", []string{"X-Signature", sig1 + "00"}, body, ErrMalformed},
		{"unexpected prefix", []string{"X-Signature", "sha256=" + sig1}, body, ErrMalformed},
		{"repeated", []string{"X-Signature", other, "X-Signature", sig1}, body, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := def.Verify(newRequest("/hook", tc.body, tc.headers...), tc.body)
			checkErr(t, err, tc.want, "key-one", "key-two", sig1, sig2, other, "zzzz")
			if err != nil && !strings.Contains(err.Error(), "X-Signature") {
				t.Errorf("error %q does not name the header", err)
			}
		})
	}
	if got := def.SecretHeaders(); len(got) != 1 || got[0] != "X-Signature" {
		t.Errorf("SecretHeaders = %v", got)
	}
}

func TestHMACVariants(t *testing.T) {
	body := []byte(`{"hello":"world"}`)
	tests := []struct {
		name   string
		cfg    HMACConfig
		header string
		value  string
		want   error
	}{
		{
			name:   "sha1 base64 custom header",
			cfg:    HMACConfig{Header: "x-hub-signature", Hash: "sha1", Encoding: "base64", Keys: []string{"k"}},
			header: "X-Hub-Signature",
			value:  base64.StdEncoding.EncodeToString(mac(sha1.New, "k", body)),
		},
		{
			name:   "sha512 hex with prefix",
			cfg:    HMACConfig{Hash: "SHA512", Prefix: "sha512=", Keys: []string{"k"}},
			header: "X-Signature",
			value:  "sha512=" + hex.EncodeToString(mac(sha512.New, "k", body)),
		},
		{
			name:   "prefix case-insensitive",
			cfg:    HMACConfig{Prefix: "sha256=", Keys: []string{"k"}},
			header: "X-Signature",
			value:  "SHA256=" + hex.EncodeToString(mac(sha256.New, "k", body)),
		},
		{
			name:   "prefix missing",
			cfg:    HMACConfig{Prefix: "sha256=", Keys: []string{"k"}},
			header: "X-Signature",
			value:  hex.EncodeToString(mac(sha256.New, "k", body)),
			want:   ErrMalformed,
		},
		{
			name:   "base64 without padding",
			cfg:    HMACConfig{Encoding: "base64", Keys: []string{"k"}},
			header: "X-Signature",
			value:  base64.RawStdEncoding.EncodeToString(mac(sha256.New, "k", body)),
		},
		{
			name:   "base64url",
			cfg:    HMACConfig{Encoding: "base64url", Keys: []string{"k"}},
			header: "X-Signature",
			value:  base64.URLEncoding.EncodeToString(mac(sha256.New, "k", body)),
		},
		{
			name:   "hex sent where base64 expected",
			cfg:    HMACConfig{Encoding: "base64", Keys: []string{"k"}},
			header: "X-Signature",
			value:  hex.EncodeToString(mac(sha256.New, "k", body)),
			want:   ErrMalformed,
		},
		{
			name:   "sha1 MAC where sha256 expected",
			cfg:    HMACConfig{Keys: []string{"k"}},
			header: "X-Signature",
			value:  hex.EncodeToString(mac(sha1.New, "k", body)),
			want:   ErrMalformed,
		},
		{
			name:   "wrong hash same length",
			cfg:    HMACConfig{Hash: "sha512", Encoding: "base64", Keys: []string{"k"}},
			header: "X-Signature",
			value:  base64.StdEncoding.EncodeToString(mac(sha512.New, "other", body)),
			want:   ErrMismatch,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewHMAC(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify(newRequest("/hook", body, tc.header, tc.value), body)
			checkErr(t, err, tc.want, tc.value)
		})
	}
}

func TestHMACConfig(t *testing.T) {
	for _, c := range []HMACConfig{
		{},
		{Keys: []string{"a", ""}},
		{Hash: "md5", Keys: []string{"a"}},
		{Encoding: "base32", Keys: []string{"a"}},
		{Header: "bad header", Keys: []string{"a"}},
	} {
		if _, err := NewHMAC(c); !errors.Is(err, ErrConfig) {
			t.Errorf("NewHMAC(%+v): got %v, want ErrConfig", c, err)
		}
	}
}

// TestHMACConcurrent exercises the pooled hash states under -race.
func TestHMACConcurrent(t *testing.T) {
	v, err := NewHMAC(HMACConfig{Keys: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 64)
	for i := range 64 {
		go func() {
			body := []byte(strings.Repeat("x", i))
			sig := hex.EncodeToString(mac(sha256.New, []string{"a", "b"}[i%2], body))
			errs <- v.Verify(newRequest("/", body, "X-Signature", sig), body)
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPathSecret(t *testing.T) {
	v, err := NewPathSecret("3f9c0a7e", "rotated-b2")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want error
	}{
		{"/hooks/sublytics/3f9c0a7e", nil},
		{"/hooks/sublytics/3f9c0a7e/", nil},
		{"/3f9c0a7e/hooks", nil},
		{"/hooks/rotated-b2?x=1", nil},
		{"/hooks/sublytics", ErrMismatch},
		{"/hooks/sublytics/3f9c0a7", ErrMismatch},
		{"/hooks/sublytics/3f9c0a7ef", ErrMismatch},
		{"/hooks/sublytics-3f9c0a7e", ErrMismatch},
		{"/hooks/sublytics?secret=3f9c0a7e", ErrMismatch},
		{"/", ErrMissing},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			checkErr(t, v.Verify(newRequest(tc.path, nil), nil), tc.want, "3f9c0a7", "rotated-b2")
		})
	}
	if got := v.Redact("/hooks/3f9c0a7e/x/rotated-b2"); got != "/hooks/REDACTED/x/REDACTED" {
		t.Errorf("Redact = %q", got)
	}
	if got := v.Redact("/hooks/other"); got != "/hooks/other" {
		t.Errorf("Redact = %q", got)
	}
	if v.SecretHeaders() != nil {
		t.Errorf("SecretHeaders = %v, want none", v.SecretHeaders())
	}
	for _, bad := range [][]string{nil, {""}, {"a/b"}, {"ok", ".."}} {
		if _, err := NewPathSecret(bad...); !errors.Is(err, ErrConfig) {
			t.Errorf("NewPathSecret(%q): got %v, want ErrConfig", bad, err)
		}
	}
}

func benchmarkHMAC(b *testing.B, size, keys int) {
	body := bytes.Repeat([]byte("a"), size)
	names := []string{"key-one", "key-two", "key-three"}[:keys]
	v, err := NewHMAC(HMACConfig{Keys: names})
	if err != nil {
		b.Fatal(err)
	}
	r := newRequest("/", body, "X-Signature", hex.EncodeToString(mac(sha256.New, names[keys-1], body)))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHMAC(b *testing.B) {
	b.Run("1KB", func(b *testing.B) { benchmarkHMAC(b, 1<<10, 1) })
	b.Run("12KB", func(b *testing.B) { benchmarkHMAC(b, 12<<10, 1) })
	b.Run("1KB-2keys", func(b *testing.B) { benchmarkHMAC(b, 1<<10, 2) })
}

func BenchmarkHeader(b *testing.B) {
	v, err := NewHeader("X-Token", "old-token-aaaaaaaaaaaaaaaaaaaa", "new-token-bbbbbbbbbbbbbbbbbbbb")
	if err != nil {
		b.Fatal(err)
	}
	r := newRequest("/", nil, "X-Token", "new-token-bbbbbbbbbbbbbbbbbbbb")
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBasic(b *testing.B) {
	v, err := NewBasic(Credential{Username: "usaepay", Password: "correct-horse-battery-staple"})
	if err != nil {
		b.Fatal(err)
	}
	r := newRequest("/", nil)
	r.SetBasicAuth("usaepay", "correct-horse-battery-staple")
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPathSecret(b *testing.B) {
	v, err := NewPathSecret("3f9c0a7e5d1b")
	if err != nil {
		b.Fatal(err)
	}
	r := newRequest("/hooks/sublytics/3f9c0a7e5d1b", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(r, nil); err != nil {
			b.Fatal(err)
		}
	}
}
