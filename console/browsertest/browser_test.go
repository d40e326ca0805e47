package browsertest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the README's screenshot of the console to docs/console.png")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	testcaddy.RemoveBinary()
	os.Exit(code)
}

const (
	browserSigKey   = "browser-test-signature-key"
	browserPath     = "browser-test-path-secret"
	consoleUser     = "operator"
	consolePassword = "correct horse battery staple"
)

// chromium finds Debian's Chromium (or another Chrome) on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (install Debian's chromium package): skipping the browser tests")
	return ""
}

// newBrowser starts a headless Chromium with an empty profile. Every page
// it opens counts its alert() calls and Content-Security-Policy violations
// in window.__alerts and window.__csp, for the test to read.
func newBrowser(t *testing.T, authorization string) context.Context {
	t.Helper()
	path := chromium(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first call starts the browser, whose life is ctx's.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": authorization}}); err != nil {
		t.Fatal(err)
	}
	watch := `window.__alerts = 0; window.__csp = [];
		window.alert = function () { window.__alerts++; };
		document.addEventListener('securitypolicyviolation', function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watch}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// within runs one step with a bound, so a page that never shows what the
// test waits for fails the test instead of hanging it.
func within(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// follow clicks what causes a navigation and waits for the new page.
func follow(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("clicking %s: %v", sel, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("clicking %s led to %s: %d", sel, resp.URL, resp.Status)
	}
}

// inert checks that nothing on the page ran that the console did not
// ship: no alert, no blocked inline code, no injected image or script.
func inert(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if n := eval[int](t, ctx, `window.__alerts`); n != 0 {
		t.Errorf("%s: alert() ran %d times", page, n)
	}
	if v := eval[[]string](t, ctx, `window.__csp`); len(v) != 0 {
		t.Errorf("%s: Content-Security-Policy violations: %v", page, v)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('img, script:not([src="console.js"]), [onerror]').length`); n != 0 {
		t.Errorf("%s: %d elements the console does not render", page, n)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) string {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

func TestBrowserFilterOpenAndReplay(t *testing.T) {
	chromium(t) // skip before building Caddy when there is no browser
	be := newBackend(t)

	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	gw := testcaddy.New(t)
	gw.Start(`http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			auth hmac ` + browserSigKey + `
			upstream ` + be.URL + `/hooks
			timeout 5s
			retry {
				attempts 1
			}
		}
	}
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			deliver sync
			auth path_secret ` + browserPath + `
			max_event_age off
		}
		reverse_proxy ` + strings.TrimPrefix(be.URL, "http://") + `
	}
	redir /console /console/
	route /console/* {
		basic_auth {
			` + consoleUser + ` ` + string(hash) + `
		}
		webhook_gateway_console {
			refresh 1s
		}
	}
}
`)
	consoleURL := gw.BaseURL() + "/console/"

	// The console sits behind Caddy's basic_auth.
	resp, err := http.Get(consoleURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("console without credentials: %d, want 401", resp.StatusCode)
	}

	// A sync event, delivered; then payment events while the backend is
	// down, dead after their single attempt. One carries hostile text.
	subBody, err := os.ReadFile(filepath.Join("..", "..", "normalize", "testdata", "sublytics", "order_abandonned.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code := postWebhook(t, gw.BaseURL()+"/hooks/sublytics/"+browserPath, subBody, nil); code != http.StatusOK {
		t.Fatalf("sublytics event: %d", code)
	}
	be.setStatus(http.StatusServiceUnavailable)
	hostileID := payment(t, gw, "tx-"+xssAttr, xssScript+xssAttr)
	plainID := payment(t, gw, "tx-plain-1", "first")
	payment(t, gw, "tx-plain-2", "second")
	waitCounts(t, gw, "dead", 3)

	ctx := newBrowser(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(consoleUser+":"+consolePassword)))
	shots := t.TempDir()

	// Overview: the counts, then a fourth dead event appears without a
	// reload.
	within(t, ctx, "overview", chromedp.Navigate(consoleURL), chromedp.WaitVisible(chromedp.ID("dead-events")))
	if got := eval[string](t, ctx, `document.getElementById('dead-events').textContent`); got != "3" {
		t.Fatalf("overview shows %q dead events, want 3", got)
	}
	eval[chromedp.Void](t, ctx, `window.__marker = 'same document'`)
	payment(t, gw, "tx-plain-3", "third")
	within(t, ctx, "live refresh", chromedp.Poll[chromedp.Void](`document.getElementById('dead-events').textContent === '4'`, chromedp.WithPollingTimeout(20*time.Second)))
	if eval[string](t, ctx, `window.__marker`) != "same document" {
		t.Error("the overview reloaded the page to refresh")
	}
	inert(t, ctx, "overview")
	screenshot(t, ctx, shots, "overview")

	// The list, filtered in the form: dead payment events only.
	within(t, ctx, "events", chromedp.Navigate(consoleURL+"events"), chromedp.WaitVisible(chromedp.ID("filter")))
	if n := eval[int](t, ctx, `document.querySelectorAll('#events tbody a[href^="event?"]').length`); n != 5 {
		t.Errorf("unfiltered list shows %d events, want 5", n)
	}
	within(t, ctx, "filter", chromedp.SetValue(chromedp.CSS(`select[name=status]`), "dead"), chromedp.SetValue(chromedp.CSS(`select[name=provider]`), "usaepay"))
	follow(t, ctx, `#filter button[type=submit]`)
	if loc := eval[string](t, ctx, `location.search`); !strings.Contains(loc, "status=dead") || !strings.Contains(loc, "provider=usaepay") {
		t.Errorf("filtered list at %q", loc)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#events tbody a[href^="event?"]').length`); n != 4 {
		t.Errorf("filtered list shows %d events, want 4", n)
	}
	if eval[bool](t, ctx, `document.getElementById('events').textContent.includes('/sublytics')`) {
		t.Error("the filtered list shows the delivered sync event")
	}
	inert(t, ctx, "events")
	eventsShot := screenshot(t, ctx, shots, "events")

	// Times in the operator's zone: the switch offers the browser's own
	// (Tokyo here), the list then shows and reads times in it, and UTC
	// brings them back.
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, "events in UTC", chromedp.Navigate(consoleURL+"events?status=dead"), chromedp.WaitVisible(chromedp.ID("zone-local")))
	firstTime := `document.querySelector('#events tbody a[href^="event?"]').textContent`
	if zone, first := eval[string](t, ctx, `document.getElementById('zone-name').textContent`), eval[string](t, ctx, firstTime); zone != "UTC" || !strings.HasSuffix(first, " UTC") {
		t.Errorf("default zone %q, first time %q: want UTC", zone, first)
	}
	if got := eval[string](t, ctx, `document.getElementById('zone-local').textContent`); got != "local (Asia/Tokyo)" {
		t.Errorf("the switch offers %q, want the browser's zone", got)
	}
	follow(t, ctx, `#zone-local`)
	if zone, first := eval[string](t, ctx, `document.getElementById('zone-name').textContent`), eval[string](t, ctx, firstTime); zone != "Asia/Tokyo" || !strings.HasSuffix(first, " JST") {
		t.Errorf("after the switch: zone %q, first time %q, want Tokyo time", zone, first)
	}
	if got := eval[string](t, ctx, `document.getElementById('filter').textContent`); !strings.Contains(got, "From (Asia/Tokyo)") {
		t.Errorf("the filter does not say its times are Tokyo time: %q", got)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from time.Duration
		want int
	}{{time.Hour, 0}, {-time.Hour, 4}} {
		from := time.Now().Add(tc.from).In(tokyo).Format("2006-01-02T15:04:05")
		eval[chromedp.Void](t, ctx, `document.getElementById('from').value = '`+from+`'`)
		follow(t, ctx, `#filter button[type=submit]`)
		if n := eval[int](t, ctx, `document.querySelectorAll('#events tbody a[href^="event?"]').length`); n != tc.want {
			t.Errorf("dead events from %s Tokyo time: %d, want %d", from, n, tc.want)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#events .dead-reason').length`); n != 4 {
		t.Errorf("%d rows say why their event is dead, want 4", n)
	}
	follow(t, ctx, `#zone-utc`)
	if zone, first := eval[string](t, ctx, `document.getElementById('zone-name').textContent`), eval[string](t, ctx, firstTime); zone != "UTC" || !strings.HasSuffix(first, " UTC") {
		t.Errorf("back to UTC: zone %q, first time %q", zone, first)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#events tbody a[href^="event?"]').length`); n != 4 {
		t.Errorf("the filter's time changed meaning with the zone: %d events, want 4", n)
	}
	inert(t, ctx, "zone switch")

	// The hostile event: its text is shown, nothing of it runs. In JSON
	// its quotes are escaped.
	const shownInJSON = `<script>alert(\"x\")</script>\"><img src=x onerror=alert(1)>`
	follow(t, ctx, `#events a[href*="id=`+hostileID+`"]`)
	within(t, ctx, "event page", chromedp.WaitVisible(chromedp.ID("canonical")))
	if text := eval[string](t, ctx, `document.getElementById('canonical').textContent`); !strings.Contains(text, shownInJSON) {
		t.Errorf("the canonical event does not show the hostile text as text:\n%s", text)
	}
	if text := eval[string](t, ctx, `document.getElementById('raw').textContent`); !strings.Contains(text, shownInJSON) {
		t.Errorf("the raw body does not show the hostile text:\n%s", text)
	}
	inert(t, ctx, "hostile event")
	screenshot(t, ctx, shots, "hostile-event")

	// Everything about one subject: searched from the list's form, then
	// followed from an event's page.
	subjects := `Array.from(document.querySelectorAll('#events tbody td.subject')).map(td => td.textContent)`
	within(t, ctx, "subject search", chromedp.Navigate(consoleURL+"events"), chromedp.WaitVisible(chromedp.CSS(`#filter input[name=subject]`)))
	eval[chromedp.Void](t, ctx, `document.querySelector('#filter input[name=subject]').value = 'tx-plain-2'`)
	follow(t, ctx, `#filter button[type=submit]`)
	if loc := eval[string](t, ctx, `location.search`); !strings.Contains(loc, "subject=tx-plain-2") {
		t.Errorf("subject search at %q", loc)
	}
	if got := eval[[]string](t, ctx, subjects); !slices.Equal(got, []string{"tx-plain-2"}) {
		t.Errorf("subject search lists subjects %q, want tx-plain-2 alone", got)
	}
	inert(t, ctx, "subject search")
	screenshot(t, ctx, shots, "subject-search")
	within(t, ctx, "event with a subject", chromedp.Navigate(consoleURL+"event?source=%2Fusaepay&id="+plainID), chromedp.WaitVisible(chromedp.ID("subject-link")))
	follow(t, ctx, `#subject-link`)
	if loc := eval[string](t, ctx, `location.search`); !strings.Contains(loc, "subject=tx-plain-1") {
		t.Errorf("the subject link led to %q", loc)
	}
	if got := eval[[]string](t, ctx, subjects); !slices.Equal(got, []string{"tx-plain-1"}) {
		t.Errorf("the subject's list shows subjects %q, want tx-plain-1 alone", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#filter input[name=subject]').value`); got != "tx-plain-1" {
		t.Errorf("the subject's list has %q in its search field", got)
	}

	// Replay a dead event once the backend is back: it turns delivered.
	be.setStatus(http.StatusOK)
	within(t, ctx, "dead event", chromedp.Navigate(consoleURL+"event?source=%2Fusaepay&id="+plainID), chromedp.WaitVisible(chromedp.ID("replay")))
	if got := eval[string](t, ctx, `document.getElementById('status').textContent.trim()`); got != "dead" {
		t.Fatalf("event status %q before the replay", got)
	}
	// Headed by type and subject, the id below; and why it is dead.
	if h1, id := eval[string](t, ctx, `document.querySelector('h1').textContent`), eval[string](t, ctx, `document.getElementById('event-id').textContent`); h1 != "transaction.sale.success tx-plain-1" || id != plainID {
		t.Errorf("event page headed %q with id %q, want its type and subject, and id %s", h1, id, plainID)
	}
	if got := eval[string](t, ctx, `document.getElementById('dead-reason').textContent`); !strings.Contains(got, "every attempt failed") {
		t.Errorf("the dead event says it is dead because %q", got)
	}
	follow(t, ctx, `#replay`)
	within(t, ctx, "replayed", chromedp.WaitVisible(chromedp.ID("replayed")))
	if got := eval[string](t, ctx, `document.getElementById('status').textContent.trim()`); got != "delivered" {
		t.Errorf("event status %q after the replay, want delivered", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('table.attempts tbody tr:last-child').textContent`); !strings.Contains(got, "200") || !strings.Contains(got, "replay") {
		t.Errorf("last attempt %q: want a 200 replay", got)
	}
	inert(t, ctx, "replayed event")
	screenshot(t, ctx, shots, "replayed")

	// The rest by filter: preview, confirm, delivered.
	within(t, ctx, "dead list", chromedp.Navigate(consoleURL+"events?status=dead"), chromedp.WaitVisible(chromedp.ID("replay-matching")))
	follow(t, ctx, `#replay-matching`)
	if got := eval[string](t, ctx, `document.getElementById('dry-run-summary').textContent`); !strings.Contains(got, "Dry run: 3 would be sent") {
		t.Errorf("dry run says %q", got)
	}
	inert(t, ctx, "replay preview")
	screenshot(t, ctx, shots, "replay-preview")
	follow(t, ctx, `#confirm`)
	if got := eval[string](t, ctx, `document.getElementById('bulk-summary').textContent`); got != "3 delivered, 0 failed, 0 skipped." {
		t.Errorf("bulk replay says %q", got)
	}
	waitCounts(t, gw, "dead", 0)

	// A sync route's event says why it cannot be replayed.
	within(t, ctx, "sync event", chromedp.Navigate(consoleURL+"events?source=%2Fsublytics"), chromedp.WaitVisible(chromedp.ID("events")))
	follow(t, ctx, `#events a[href^="event?"]`)
	if got := eval[string](t, ctx, `document.getElementById('cannot-replay').textContent`); !strings.Contains(got, "deliver sync") {
		t.Errorf("sync event says %q", got)
	}

	// Purged from its page, after a confirmation: then it is gone.
	syncID := eval[string](t, ctx, `document.getElementById('event-id').textContent`)
	follow(t, ctx, `#purge-event`)
	if got := eval[string](t, ctx, `document.getElementById('purge-event').textContent`); !strings.Contains(got, syncID) {
		t.Errorf("the confirmation does not name the event %s: %q", syncID, got)
	}
	if code := adminStatus(t, gw, "/sublytics", syncID); code != http.StatusOK {
		t.Fatalf("the event is gone before the confirmation: %d", code)
	}
	follow(t, ctx, `#confirm`)
	if got := eval[string](t, ctx, `document.getElementById('purged').textContent`); got != "Deleted 1 event" {
		t.Errorf("purge says %q", got)
	}
	if code := adminStatus(t, gw, "/sublytics", syncID); code != http.StatusNotFound {
		t.Errorf("the admin API answers %d for the purged event, want 404", code)
	}
	inert(t, ctx, "purged event")

	if *updateScreenshot {
		b, err := os.ReadFile(eventsShot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// payment posts a signed payment event whose object key and description
// are given, and returns its id.
func payment(t *testing.T, gw *testcaddy.Instance, key, description string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(key + description))
	id := hex.EncodeToString(sum[:])
	// Unescaped, as an attacker would send it: < and > stay raw.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{
		"type": "event", "event_type": "transaction.sale.success", "event_id": id, "event_triggered": time.Now().UTC().Format(time.DateTime),
		"event_body": map[string]any{"object": map[string]any{"type": "transaction", "key": key, "description": description}},
	}); err != nil {
		t.Fatal(err)
	}
	body := bytes.TrimSpace(buf.Bytes())
	mac := hmac.New(sha256.New, []byte(browserSigKey))
	mac.Write(body)
	if code := postWebhook(t, gw.BaseURL()+"/hooks/usaepay", body, http.Header{"X-Signature": {hex.EncodeToString(mac.Sum(nil))}}); code != http.StatusAccepted {
		t.Fatalf("payment %s: %d", key, code)
	}
	return id
}

func postWebhook(t *testing.T, url string, body []byte, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// adminStatus is the admin API's status for one event: 200, or 404 once
// it is gone.
func adminStatus(t *testing.T, gw *testcaddy.Instance, source, id string) int {
	t.Helper()
	resp, err := http.Get(gw.AdminURL() + "/webhooks/event?source=" + url.QueryEscape(source) + "&id=" + url.QueryEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitCounts waits until the admin API counts n events in status.
func waitCounts(t *testing.T, gw *testcaddy.Instance, status string, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%d %s events", n, status), func() bool {
		resp, err := http.Get(gw.AdminURL() + "/webhooks/counts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var c struct{ Counts map[string]int }
		return json.NewDecoder(resp.Body).Decode(&c) == nil && c.Counts[status] == n
	})
}

// A sync delivery the backend refuses shows on the event's page as
// released, with the backend's 502; the provider's retry, delivered, shows
// both attempts on the same page.
func TestBrowserFailedSyncAttemptThenDelivered(t *testing.T) {
	chromium(t)
	be := newBackend(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(consolePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	gw := testcaddy.New(t)
	gw.Start(`http://127.0.0.1:{{PORT}} {
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			deliver sync
			auth path_secret ` + browserPath + `
			max_event_age off
		}
		reverse_proxy ` + strings.TrimPrefix(be.URL, "http://") + `
	}
	redir /console /console/
	route /console/* {
		basic_auth {
			` + consoleUser + ` ` + string(hash) + `
		}
		webhook_gateway_console
	}
}
`)
	body, err := os.ReadFile(filepath.Join("..", "..", "normalize", "testdata", "sublytics", "order_abandonned.json"))
	if err != nil {
		t.Fatal(err)
	}
	hook := gw.BaseURL() + "/hooks/sublytics/" + browserPath
	be.setStatus(http.StatusBadGateway)
	if code := postWebhook(t, hook, body, nil); code != http.StatusBadGateway {
		t.Fatalf("event with the backend failing: %d, want 502", code)
	}
	waitCounts(t, gw, "released", 1)

	ctx := newBrowser(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(consoleUser+":"+consolePassword)))
	consoleURL := gw.BaseURL() + "/console/"
	within(t, ctx, "released events", chromedp.Navigate(consoleURL+"events?status=released"), chromedp.WaitVisible(chromedp.ID("events")))
	follow(t, ctx, `#events tbody a[href^="event?"]`)
	page := eval[string](t, ctx, `location.href`)
	attempts := func() []string {
		return eval[[]string](t, ctx, `[...document.querySelectorAll('table.attempts tbody tr')].map(r => r.cells[0].textContent.trim() + ' ' + r.cells[2].textContent.trim())`)
	}
	if s := eval[string](t, ctx, `document.getElementById('status').textContent.trim()`); s != "released" {
		t.Errorf("status before the retry: %q, want released", s)
	}
	if got := attempts(); len(got) != 1 || got[0] != "1 502" {
		t.Errorf("attempts before the retry: %q, want [1 502]", got)
	}

	// The provider retries once the backend is back.
	be.setStatus(http.StatusOK)
	if code := postWebhook(t, hook, body, nil); code != http.StatusOK {
		t.Fatalf("the provider's retry: %d, want 200", code)
	}
	within(t, ctx, "the event's page again", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("table.attempts")))
	if s := eval[string](t, ctx, `document.getElementById('status').textContent.trim()`); s != "delivered" {
		t.Errorf("status after the retry: %q, want delivered", s)
	}
	if got := attempts(); len(got) != 2 || got[0] != "1 502" || got[1] != "2 200" {
		t.Errorf("attempts after the retry: %q, want [1 502, 2 200]", got)
	}
}
