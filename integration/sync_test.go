package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

func startSync(t *testing.T) (*testcaddy.Instance, *backend) {
	t.Helper()
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(syncSite(be.host()))
	return gw, be
}

func TestSyncEveryFixtureForwardedAsCloudEvent(t *testing.T) {
	gw, be := startSync(t)

	sent := 0
	for _, name := range fixtures(t, "usaepay") {
		body := fixture(t, "usaepay", name)
		code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
		if code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("usaepay %s: %d %v", name, code, answer)
		}
		sent++
	}
	for _, name := range fixtures(t, "sublytics") {
		body := fixture(t, "sublytics", name)
		code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, body, nil)
		if code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("sublytics %s: %d %v", name, code, answer)
		}
		sent++
	}
	for _, name := range fixtures(t, "openloyalty") {
		body := fixture(t, "openloyalty", name)
		code, answer := post(t, gw.BaseURL()+"/hooks/openloyalty", body, loyaltyHeaders())
		if code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("openloyalty %s: %d %v", name, code, answer)
		}
		if events, ok := answer["events"].([]any); ok {
			sent += len(events)
		} else {
			sent++
		}
	}

	got := be.received()
	if len(got) != sent {
		t.Fatalf("backend received %d events, want %d", len(got), sent)
	}
	for _, r := range got {
		checkCloudEvent(t, r)
	}
}

func TestSyncUSAePayExampleIsNormalized(t *testing.T) {
	gw, be := startSync(t)
	body := fixture(t, "usaepay", "transaction.sale.success")
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, answer)
	}
	got := be.received()
	if len(got) != 1 {
		t.Fatalf("backend got %d requests", len(got))
	}
	ev := got[0].Event
	want := map[string]any{
		"specversion": "1.0",
		"id":          "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd",
		"source":      "/usaepay",
		"type":        "transaction.sale.success",
		"subject":     "1nftvzx7xtcggm3",
		"time":        "2021-04-07T15:14:26Z",
		"provider":    "usaepay",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v", k, ev[k], v)
		}
	}
	if answer["id"] != want["id"] {
		t.Errorf("answer id = %v", answer["id"])
	}
}

func TestSyncAuthFailures(t *testing.T) {
	gw, be := startSync(t)
	payment := fixture(t, "usaepay", "transaction.sale.success")
	loyalty := fixture(t, "openloyalty", "customer.updated")
	sub := fixture(t, "sublytics", "order_updated")

	withBasic := func(user, pass string, sig string) http.Header {
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(user, pass)
		h := http.Header{}
		h.Set("Authorization", req.Header.Get("Authorization"))
		if sig != "" {
			h.Set("X-Signature", sig)
		}
		return h
	}
	cases := []struct {
		name   string
		path   string
		body   []byte
		header http.Header
	}{
		{"usaepay no auth", "/hooks/usaepay", payment, nil},
		{"usaepay wrong password", "/hooks/usaepay", payment, withBasic(basicUser, "nope", sign(sigKey, payment))},
		{"usaepay wrong user", "/hooks/usaepay", payment, withBasic("other", basicPass, sign(sigKey, payment))},
		{"usaepay missing signature", "/hooks/usaepay", payment, withBasic(basicUser, basicPass, "")},
		{"usaepay bad signature", "/hooks/usaepay", payment, withBasic(basicUser, basicPass, sign("wrong", payment))},
		{"usaepay signature of other body", "/hooks/usaepay", payment, withBasic(basicUser, basicPass, sign(sigKey, loyalty))},
		{"loyalty missing header", "/hooks/openloyalty", loyalty, nil},
		{"loyalty wrong token", "/hooks/openloyalty", loyalty, http.Header{loyaltyHeader: {"guess"}}},
		{"sublytics wrong path secret", "/hooks/sublytics/guess", sub, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, answer := post(t, gw.BaseURL()+tc.path, tc.body, tc.header)
			if code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %v", code, answer)
			}
			if answer["error"] != "unauthorized" {
				t.Errorf("answer %v hints at more than 'unauthorized'", answer)
			}
		})
	}
	if n := len(be.received()); n != 0 {
		t.Fatalf("backend received %d forged requests", n)
	}

	// Rotated secrets are all accepted.
	oldSig := withBasic(basicUser, basicPass, sign(sigKeyOld, payment))
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", payment, oldSig); code != http.StatusOK {
		t.Fatalf("old signature key refused: %d %v", code, answer)
	}
	if code, answer := post(t, gw.BaseURL()+"/hooks/openloyalty", loyalty, http.Header{loyaltyHeader: {loyaltyOld}}); code != http.StatusOK {
		t.Fatalf("old loyalty token refused: %d %v", code, answer)
	}
}

func TestSyncBadInput(t *testing.T) {
	gw, be := startSync(t)
	invalid := []byte(`{"type": "event", "event_type": "x",}`)
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", invalid, usaepayHeaders(invalid))
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(answer["error"]), "offset") {
		t.Fatalf("invalid JSON: %d %v", code, answer)
	}

	missing := []byte(`{"type":"event","event_type":"transaction.sale.success","event_triggered":"2021-04-07 15:14:26","event_body":{}}`)
	code, answer = post(t, gw.BaseURL()+"/hooks/usaepay", missing, usaepayHeaders(missing))
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(answer["error"]), "event_id") {
		t.Fatalf("missing event_id: %d %v", code, answer)
	}

	unknown := []byte(`{"hello":"world"}`)
	code, answer = post(t, gw.BaseURL()+"/hooks/openloyalty", unknown, loyaltyHeaders())
	if code != http.StatusBadRequest {
		t.Fatalf("unknown envelope: %d %v", code, answer)
	}

	big := bytes.Repeat([]byte("a"), 6<<20)
	code, answer = post(t, gw.BaseURL()+"/hooks/usaepay", big, usaepayHeaders(big))
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d %v", code, answer)
	}

	resp, err := http.Get(gw.BaseURL() + "/hooks/usaepay")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d, want 405", resp.StatusCode)
	}
	if n := len(be.received()); n != 0 {
		t.Fatalf("backend received %d bad requests", n)
	}
}

func TestSyncDuplicatesForwardedOnce(t *testing.T) {
	gw, be := startSync(t)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"

	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK {
		t.Fatalf("first: %d %v", code, answer)
	}
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if code != http.StatusOK || answer["status"] != "duplicate" || answer["id"] != id {
		t.Fatalf("second: %d %v", code, answer)
	}
	if n := be.count(id); n != 1 {
		t.Fatalf("backend received the event %d times", n)
	}
}

func TestSyncConcurrentDuplicatesForwardedOnce(t *testing.T) {
	gw, be := startSync(t)
	body := fixture(t, "sublytics", "transaction_completed")

	const n = 50
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		start = make(chan struct{})
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, _ := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, body, nil)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()

	if got := len(be.received()); got != 1 {
		t.Fatalf("backend received %d requests for %d identical webhooks, want 1 (answers %v)", got, n, codes)
	}
	if codes[http.StatusOK] < 1 || codes[http.StatusOK]+codes[http.StatusConflict] != n {
		t.Fatalf("answers %v: want only 200 (delivered or duplicate) and 409 (in progress)", codes)
	}
}

func TestSyncBackendFailureReleasesForRetry(t *testing.T) {
	gw, be := startSync(t)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"

	be.setStatus(http.StatusInternalServerError)
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if code != http.StatusBadGateway {
		t.Fatalf("backend 500: got %d %v, want 502", code, answer)
	}

	be.setStatus(http.StatusOK)
	code, answer = post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("retry: %d %v", code, answer)
	}
	if n := be.count(id); n != 2 {
		t.Fatalf("backend saw the event %d times, want 2 (failed then delivered)", n)
	}

	// Backend unreachable: reverse_proxy fails, the provider gets 502.
	be.Close()
	other := bytes.Replace(body, []byte("c088bc"), []byte("d088bc"), 1)
	code, answer = post(t, gw.BaseURL()+"/hooks/usaepay", other, usaepayHeaders(other))
	if code != http.StatusBadGateway {
		t.Fatalf("backend down: %d %v, want 502", code, answer)
	}
}

func TestSyncDedupSurvivesRestartAndReload(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	site := syncSite(be.host())
	gw.Start(site)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK {
		t.Fatalf("first: %d %v", code, answer)
	}

	// A reload keeps the store open across both configs.
	reloaded := strings.Replace(site, "deliver sync", "deliver sync\n\t\t\tretention 240h", 1)
	if err := gw.Reload(reloaded); err != nil {
		t.Fatal(err)
	}
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("after reload: %d %v", code, answer)
	}

	// A restart reopens the same directory.
	gw.Stop()
	gw.Start(reloaded)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("after restart: %d %v", code, answer)
	}
	if n := be.count(id); n != 1 {
		t.Fatalf("backend received the event %d times", n)
	}
}

// TestSyncInProgressAnswers409 sends an event again while its first
// delivery is still waiting for the backend: the provider is told to come
// back shortly, and once the first delivery has succeeded it is a duplicate.
func TestSyncInProgressAnswers409(t *testing.T) {
	be := newBackend(t)
	be.delay = 2 * time.Second
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(syncSite(be.host()))
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"

	first := make(chan int, 1)
	go func() {
		code, _, _ := send(gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
		first <- code
	}()
	testwait.For(t, "the first delivery to reach the backend", func() bool { return be.count(id) == 1 })
	code, header, answer, err := sendWithHeader(gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusConflict || answer["status"] != "in_progress" || answer["id"] != id {
		t.Fatalf("while in flight: %d %v, want 409 in_progress", code, answer)
	}
	if got := header.Get("Retry-After"); got != "1" {
		t.Errorf("409 carries Retry-After %q, want 1", got)
	}

	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("after delivery: %d %v", code, answer)
	}
	if n := be.count(id); n != 1 {
		t.Fatalf("backend received the event %d times", n)
	}
}

// paymentRoute is a site with one sync payment route in front of be, with
// opts added to the route's webhook_gateway block.
func paymentRoute(be *backend, opts string) string {
	return `http://127.0.0.1:{{PORT}} {
	webhook_gateway usaepay {
		store_dir {{DIR}}/store
		max_event_age off
		deliver sync
		` + opts + `
	}
	reverse_proxy ` + be.host() + `
}
`
}

// TestSecretFromFilePlaceholder reads the signature key from a file, as a
// secret mounted by an orchestrator is; the file's trailing newline is not
// part of the key.
func TestSecretFromFilePlaceholder(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t)
	if err := os.WriteFile(filepath.Join(gw.Dir, "signature.key"), []byte(sigKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.Start(paymentRoute(be, "auth hmac {file.{{DIR}}/signature.key}"))

	body := fixture(t, "usaepay", "transaction.sale.success")
	if code, answer := post(t, gw.BaseURL()+"/", body, signedHeader(body)); code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("signed with the key from the file: %d %v", code, answer)
	}
	forged := http.Header{"X-Signature": {sign("not-the-key", body)}}
	if code, answer := post(t, gw.BaseURL()+"/", body, forged); code != http.StatusUnauthorized {
		t.Fatalf("signed with another key: %d %v, want 401", code, answer)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	be := newBackend(t)
	route := func(opts string) string {
		if !strings.Contains(opts, "auth ") {
			// Each case is one mistake; a route without auth is another.
			opts += "\n\t\tauth none"
		}
		return paymentRoute(be, opts)
	}
	cases := []struct {
		name, opts, want string
	}{
		{"unknown provider", "provider stripe", "unknown provider"},
		{"unknown auth scheme", "auth jwt foo", "unknown scheme"},
		{"empty secret", "auth hmac {env.TEST_UNSET_SECRET}", "webhook_gateway.auth.hmac: secret #1"},
		{"unknown placeholder", "auth hmac {vault.signature_key}", "webhook_gateway.auth.hmac: secret #1"},
		{"missing secret file", "auth hmac {file.{{DIR}}/absent.key}", "webhook_gateway.auth.hmac: secret #1"},
		// Values every webhook would fail on with a 500 if they loaded.
		{"source with a space", `source "has space"`, "webhook_gateway: source:"},
		{"type_prefix with a space", `type_prefix "a b"`, "webhook_gateway: type_prefix:"},
		{"bad time zone", "time_zone Mars/Olympus", "time_zone"},
		{"unwritable store", "store_dir /proc/webhook_gateway_store", "store_dir"},
		{"async without upstream", "deliver async", "upstream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := testcaddy.New(t)
			err := gw.TryStart(route(tc.opts))
			if err == nil {
				t.Fatal("caddy started with a bad config")
			}
			if !strings.Contains(err.Error(), "webhook_gateway") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not name the problem (%q): %v", tc.want, err)
			}
		})
	}

	t.Run("failed reload keeps the old config serving", func(t *testing.T) {
		gw := testcaddy.New(t, gatewayEnv...)
		gw.Start(route("auth hmac {env.TEST_SIG_KEY}"))
		if err := gw.Reload(route("auth hmac {env.TEST_UNSET_SECRET}")); err == nil {
			t.Fatal("reload with an empty secret succeeded")
		}
		body := fixture(t, "usaepay", "transaction.sale.success")
		h := http.Header{"X-Signature": {sign(sigKey, body)}}
		if code, answer := post(t, gw.BaseURL()+"/", body, h); code != http.StatusOK {
			t.Fatalf("old config no longer serves: %d %v", code, answer)
		}
	})
}
