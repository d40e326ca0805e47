package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// checkAuthJSON compares the handler's auth entries with the expected JSON
// objects, ignoring layout and key order.
func checkAuthJSON(t *testing.T, got []json.RawMessage, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("auth has %d entries, want %d: %s", len(got), len(want), got)
	}
	for i := range want {
		var g, w any
		if err := json.Unmarshal(got[i], &g); err != nil {
			t.Fatalf("auth #%d: %v", i+1, err)
		}
		if err := json.Unmarshal([]byte(want[i]), &w); err != nil {
			t.Fatalf("want #%d: %v", i+1, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("auth #%d = %s, want %s", i+1, got[i], want[i])
		}
	}
}

func parseGateway(t *testing.T, body string) *Handler {
	t.Helper()
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway {\n" + body + "\n}")); err != nil {
		t.Fatal(err)
	}
	return &h
}

// TestAuthCaddyfileEveryScheme parses every scheme with every
// subdirective into the JSON the modules decode.
func TestAuthCaddyfileEveryScheme(t *testing.T) {
	cases := map[string]struct {
		lines string
		want  []string
	}{
		"header": {"auth header X-Loyalty-Token {env.T}",
			[]string{`{"scheme": "header", "header": "X-Loyalty-Token", "secrets": ["{env.T}"]}`}},
		"basic rotation": {"auth basic u {env.P}\nauth basic u2 {env.P2}",
			[]string{`{"scheme": "basic", "credentials": [{"username": "u", "password": "{env.P}"}, {"username": "u2", "password": "{env.P2}"}]}`}},
		"hmac every option": {`auth hmac {env.K} {env.K_OLD} {
				header           X-Webhook-Signature
				hash             sha512
				encoding         base64url
				prefix           sha512=
				format           plain
				key_encoding     base64
				timestamp_header X-Webhook-Timestamp
				tolerance        90s
				signed_content   {timestamp}.{body}
				algorithm_header X-Webhook-Signature-Algorithm
			}`,
			[]string{`{"scheme": "hmac", "secrets": ["{env.K}", "{env.K_OLD}"], "header": "X-Webhook-Signature",
				"hash": "sha512", "encoding": "base64url", "prefix": "sha512=", "format": "plain", "key_encoding": "base64",
				"timestamp_header": "X-Webhook-Timestamp", "tolerance": 90000000000, "signed_content": "{timestamp}.{body}",
				"algorithm_header": "X-Webhook-Signature-Algorithm"}`}},
		"hmac lines stay separate": {"auth hmac {env.A}\nauth hmac {env.B}",
			[]string{`{"scheme": "hmac", "secrets": ["{env.A}"]}`, `{"scheme": "hmac", "secrets": ["{env.B}"]}`}},
		"path_secret": {"auth path_secret {env.S} {env.S2}",
			[]string{`{"scheme": "path_secret", "secrets": ["{env.S}", "{env.S2}"]}`}},
		"standard_webhooks": {"auth standard_webhooks {env.W} whsec_abc {\n tolerance 2m\n}",
			[]string{`{"scheme": "standard_webhooks", "secrets": ["{env.W}", "whsec_abc"], "tolerance": 120000000000}`}},
		"none":              {"auth none", []string{`{"scheme": "none"}`}},
		"none twice is one": {"auth none\nauth none", []string{`{"scheme": "none"}`}},
		// Caught at load time, where the JSON form is checked too.
		"none and another": {"auth none\nauth header X-T v",
			[]string{`{"scheme": "none"}`, `{"scheme": "header", "header": "X-T", "secrets": ["v"]}`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			checkAuthJSON(t, parseGateway(t, tc.lines).Auth, tc.want...)
		})
	}
	if h := parseGateway(t, "provider usaepay"); h.Auth != nil {
		t.Errorf("no auth line gave %s", h.Auth)
	}
}

func TestAuthCaddyfileErrors(t *testing.T) {
	cases := map[string]struct{ line, want string }{
		"unknown scheme":                 {"auth jwt x", `unknown scheme "jwt" (want basic, header, hmac, none, path_secret, standard_webhooks)`},
		"missing scheme":                 {"auth", "missing scheme"},
		"header without value":           {"auth header X-Token", "want <name> <value>"},
		"header with a block":            {"auth header X-Token v {\n hash sha1\n}", "no options block"},
		"basic one arg":                  {"auth basic user", "want <username> <password>"},
		"basic three args":               {"auth basic user pass more", "want <username> <password>"},
		"hmac without key":               {"auth hmac", "want <key>"},
		"hmac bad option":                {"auth hmac k {\n colour red\n}", `unrecognized option "colour"`},
		"hmac option without value":      {"auth hmac k {\n timestamp_header\n}", "missing value"},
		"hmac option with two values":    {"auth hmac k {\n header A B\n}", "too many arguments"},
		"hmac bad tolerance":             {"auth hmac k {\n tolerance soon\n}", "invalid duration"},
		"path_secret without secret":     {"auth path_secret", "want <secret>"},
		"standard_webhooks no secret":    {"auth standard_webhooks", "want <whsec_"},
		"standard_webhooks bad option":   {"auth standard_webhooks whsec_a {\n header X\n}", `unrecognized option "header"`},
		"standard_webhooks bad duration": {"auth standard_webhooks whsec_a {\n tolerance -1s\n}", "invalid duration"},
		"none with an argument":          {"auth none please", "takes no arguments"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway {\n" + tc.line + "\n}"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Fatalf("got %v, want an error at a Caddyfile line containing %q", err, tc.want)
			}
		})
	}
}

// loadAuthJSON provisions auth entries as Caddy does for the handler.
func loadAuthJSON(t *testing.T, entries ...string) ([]verify.Verifier, []string, error) {
	t.Helper()
	h := &Handler{}
	for _, e := range entries {
		h.Auth = append(h.Auth, json.RawMessage(e))
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return h.loadAuth(ctx)
}

func hexMAC(key string, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func postRequest(body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/p4th-s3cret/x", strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// TestAuthJSON loads today's JSON forms and the new schemes, and checks
// each built check on a real request.
func TestAuthJSON(t *testing.T) {
	t.Setenv("TEST_AUTH_KEY", "sig-key")
	t.Setenv("TEST_AUTH_PASS", "pa:ss")
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := `{"event_id":"e1"}`
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	wh, err := standardwebhooks.NewWebhook(whsec)
	if err != nil {
		t.Fatal(err)
	}
	swSig, _ := wh.Sign("msg_1", now, []byte(body))
	basicReq := postRequest(body)
	basicReq.SetBasicAuth("usaepay", "pa:ss")

	cases := []struct {
		name, entry  string
		good         *http.Request
		secretHeader string
	}{
		{"header", `{"scheme": "header", "header": "X-Token", "secrets": ["t0ken"]}`, postRequest(body, "X-Token", "t0ken"), "X-Token"},
		{"basic", `{"scheme": "basic", "credentials": [{"username": "usaepay", "password": "{env.TEST_AUTH_PASS}"}]}`, basicReq, "Authorization"},
		{"hmac today", `{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_KEY}"]}`, postRequest(body, "X-Signature", hexMAC("sig-key", body)), "X-Signature"},
		{"hmac timestamped", `{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_KEY}"], "header": "X-Webhook-Signature",
			"timestamp_header": "X-Webhook-Timestamp", "signed_content": "{timestamp}.{body}", "tolerance": 60000000000}`,
			postRequest(body, "X-Webhook-Signature", hexMAC("sig-key", ts+"."+body), "X-Webhook-Timestamp", ts), "X-Webhook-Signature"},
		{"hmac stripe", `{"scheme": "hmac", "secrets": ["whsec_stripe"], "format": "stripe"}`,
			postRequest(body, "Stripe-Signature", "t="+ts+",v1="+hexMAC("whsec_stripe", ts+"."+body)), "Stripe-Signature"},
		{"path_secret", `{"scheme": "path_secret", "secrets": ["p4th-s3cret"]}`, postRequest(body), ""},
		{"standard_webhooks", `{"scheme": "standard_webhooks", "secrets": ["` + whsec + `"]}`,
			postRequest(body, "Webhook-Id", "msg_1", "Webhook-Timestamp", ts, "Webhook-Signature", swSig), "Webhook-Signature"},
		{"none", `{"scheme": "none"}`, postRequest(body), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verifiers, headers, err := loadAuthJSON(t, tc.entry)
			if err != nil {
				t.Fatal(err)
			}
			if len(verifiers) != 1 {
				t.Fatalf("%d verifiers", len(verifiers))
			}
			if err := verifiers[0].Verify(tc.good, []byte(body)); err != nil {
				t.Fatalf("good request refused: %v", err)
			}
			if tc.name != "none" {
				if err := verifiers[0].Verify(postRequest(body), []byte(body)); err == nil && tc.name != "path_secret" {
					t.Fatal("request without credentials accepted")
				}
			}
			if want := tc.secretHeader; (want == "" && len(headers) != 0) || (want != "" && (len(headers) != 1 || headers[0] != want)) {
				t.Errorf("secret headers %v, want %q", headers, want)
			}
		})
	}

	// Basic and HMAC together, as the payment gateway sends them.
	verifiers, headers, err := loadAuthJSON(t,
		`{"scheme": "basic", "credentials": [{"username": "usaepay", "password": "{env.TEST_AUTH_PASS}"}]}`,
		`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_KEY}"]}`)
	if err != nil || len(verifiers) != 2 || !reflect.DeepEqual(headers, []string{"Authorization", "X-Signature"}) {
		t.Fatalf("basic + hmac: %v, %d verifiers, headers %v", err, len(verifiers), headers)
	}
}

// TestAuthLoadErrors: every way an auth config can be wrong stops the
// load, with an error that names the problem and never a secret's value.
func TestAuthLoadErrors(t *testing.T) {
	t.Setenv("TEST_AUTH_EMPTY", "")
	t.Setenv("TEST_AUTH_SECRET", "very-secret-value")
	cases := []struct {
		name    string
		entries []string
		want    string
	}{
		{"no auth", nil, `add an auth line`},
		{"unknown scheme", []string{`{"scheme": "jwt"}`}, "webhook_gateway.auth.jwt"},
		{"no scheme", []string{`{"secrets": ["x"]}`}, "scheme"},
		{"field of another scheme", []string{`{"scheme": "header", "header": "X-T", "secrets": ["v"], "hash": "sha1"}`}, `unknown field "hash"`},
		{"empty env secret", []string{`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_EMPTY}"]}`}, "{env.TEST_AUTH_EMPTY}"},
		{"unknown placeholder", []string{`{"scheme": "header", "header": "X-T", "secrets": ["{vault.token}"]}`}, "{vault.token}"},
		{"missing file", []string{`{"scheme": "path_secret", "secrets": ["{file./nonexistent/secret}"]}`}, "/nonexistent/secret"},
		{"basic empty password", []string{`{"scheme": "basic", "credentials": [{"username": "u", "password": "{env.TEST_AUTH_EMPTY}"}]}`}, "credential #1 password"},
		{"header without name", []string{`{"scheme": "header", "secrets": ["{env.TEST_AUTH_SECRET}"]}`}, "empty header name"},
		{"hmac without keys", []string{`{"scheme": "hmac"}`}, "no keys"},
		{"hmac unknown format", []string{`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_SECRET}"], "format": "github"}`}, "unknown format"},
		{"hmac timestamp without header", []string{`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_SECRET}"], "signed_content": "{timestamp}.{body}"}`}, "no timestamp header"},
		{"hmac tolerance without timestamp", []string{`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_SECRET}"], "tolerance": 1000000000}`}, "needs a timestamp"},
		{"standard_webhooks not base64", []string{`{"scheme": "standard_webhooks", "secrets": ["{env.TEST_AUTH_SECRET}"]}`}, "not base64"},
		{"none with another", []string{`{"scheme": "none"}`, `{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_SECRET}"]}`}, "cannot be combined"},
		{"another with none", []string{`{"scheme": "hmac", "secrets": ["{env.TEST_AUTH_SECRET}"]}`, `{"scheme": "none"}`}, "cannot be combined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadAuthJSON(t, tc.entries...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "very-secret-value") {
				t.Fatalf("error %q leaks a secret", err)
			}
		})
	}
	_, _, err := loadAuthJSON(t)
	if !errors.Is(err, errNoAuth) {
		t.Fatalf("no auth: %v", err)
	}
}

// TestAuthCaddyfileToVerifier goes from Caddyfile lines through JSON to
// checks, as a config load does: the loyalty platform's hosted sender and a
// Standard Webhooks sender.
func TestAuthCaddyfileToVerifier(t *testing.T) {
	t.Setenv("TEST_LOYALTY_KEY", "whsec_loyalty")
	h := parseGateway(t, `auth hmac {env.TEST_LOYALTY_KEY} {
		header           X-Webhook-Signature
		timestamp_header X-Webhook-Timestamp
		signed_content   {timestamp}.{body}
		algorithm_header X-Webhook-Signature-Algorithm
	}`)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	verifiers, _, err := h.loadAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"CustomerRegistered"}`
	now := strconv.FormatInt(time.Now().Unix(), 10)
	stale := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	good := postRequest(body, "X-Webhook-Signature", hexMAC("whsec_loyalty", now+"."+body), "X-Webhook-Timestamp", now, "X-Webhook-Signature-Algorithm", "HMAC-SHA256")
	if err := verifiers[0].Verify(good, []byte(body)); err != nil {
		t.Fatalf("good request: %v", err)
	}
	old := postRequest(body, "X-Webhook-Signature", hexMAC("whsec_loyalty", stale+"."+body), "X-Webhook-Timestamp", stale)
	if err := verifiers[0].Verify(old, []byte(body)); !errors.Is(err, verify.ErrStale) {
		t.Fatalf("stale request: %v, want ErrStale", err)
	}

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	h = parseGateway(t, "auth standard_webhooks "+secret)
	if verifiers, _, err = h.loadAuth(ctx); err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	sig, _ := wh.Sign("msg_9", time.Now(), []byte(body))
	r := postRequest(body, "Webhook-Id", "msg_9", "Webhook-Timestamp", now, "Webhook-Signature", sig)
	if err := verifiers[0].Verify(r, []byte(body)); err != nil {
		t.Fatalf("standard webhooks request: %v", err)
	}
}

// A route without an auth line does not load, and fails before it opens a
// store.
func TestProvisionRefusesRouteWithoutAuth(t *testing.T) {
	dir := t.TempDir() + "/store"
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway usaepay {\n store_dir " + dir + "\n}")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("provisioned a route without auth")
	}
	if !strings.Contains(err.Error(), "webhook_gateway: no auth configured") || !strings.Contains(err.Error(), "auth none") {
		t.Fatalf("Provision() = %v, want the no-auth error that names auth none", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Fatalf("store directory created (%v) for a refused route", statErr)
	}
}
