package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// adminSite has an async payment route delivering (signed) to backend and a sync
// subscription route in front of reverse_proxy, sharing one store: the
// admin API can replay the first and must refuse the second.
func adminSite(backend *backend, workers int) string {
	return fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			deliver async
			upstream %s/events
			signing_secret {env.TEST_SIGNING_SECRET}
			workers %d
			retry {
				attempts 3
				initial_delay 50ms
				max_delay 100ms
			}
		}
	}
	route /hooks/sublytics/* {
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth path_secret {env.TEST_SUBLYTICS_SECRET}
		}
		reverse_proxy %s
	}
}
`, backend.URL, workers, backend.host())
}

// adminGet calls the admin API and decodes its JSON answer into out.
func adminGet(t *testing.T, gw *testcaddy.Instance, path string, out any) int {
	t.Helper()
	resp, err := http.Get(gw.AdminURL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decodeAnswer(t, resp, out)
}

func adminPost(t *testing.T, gw *testcaddy.Instance, path string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(gw.AdminURL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decodeAnswer(t, resp, out)
}

func decodeAnswer(t *testing.T, resp *http.Response, out any) int {
	t.Helper()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("admin answer (%d) is not JSON: %v: %s", resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode
}

type listed struct {
	Store  string `json:"store"`
	Events []struct {
		Source   string `json:"source"`
		ID       string `json:"id"`
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	} `json:"events"`
	NextCursor string `json:"next_cursor"`
}

type replayed struct {
	DryRun  bool                `json:"dry_run"`
	Header  map[string][]string `json:"header"`
	Attempt *struct {
		Status int `json:"status"`
	} `json:"attempt"`
	Status    string `json:"status"`
	Matched   int    `json:"matched"`
	Delivered int    `json:"delivered"`
	Failed    int    `json:"failed"`
	Error     string `json:"error"`
}

// onlyResult is the one result of a replay answer (one per delivery
// replayed) for an event with one delivery.
func onlyResult(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var answer struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || len(answer.Results) != 1 {
		t.Fatalf("replay answer with one result: %v %s", err, raw)
	}
	return answer.Results[0]
}

// noFullSignature fails when out, one replay's answer, carries the full
// webhook-signature of the request it describes, recomputed from its
// webhook-id, webhook-timestamp and body; the answer must show it masked.
func noFullSignature(t *testing.T, out []byte) {
	t.Helper()
	var res struct {
		Header http.Header     `json:"header"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("replay answer: %v\n%s", err, out)
	}
	unix, err := strconv.ParseInt(res.Header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("replay answer without a webhook-timestamp: %s", out)
	}
	// The CLI indents its output; the event was sent compact.
	var body bytes.Buffer
	if err := json.Compact(&body, res.Body); err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(signingSecret)
	if err != nil {
		t.Fatal(err)
	}
	full, err := wh.Sign(res.Header.Get("Webhook-Id"), time.Unix(unix, 0), body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(strings.TrimPrefix(full, "v1,"))) {
		t.Fatalf("the replay answer carries the full signature %s:\n%s", full, out)
	}
	if shown := res.Header.Get("Webhook-Signature"); !strings.HasSuffix(shown, "…") || !strings.HasPrefix(full, strings.TrimSuffix(shown, "…")) {
		t.Fatalf("webhook-signature shown as %q, want the start of %q, masked", shown, full)
	}
}

// replays counts the backend requests for id marked as replays.
func (b *backend) replays(id string) int {
	n := 0
	for _, r := range b.received() {
		if r.Event["id"] == id && r.Header.Get("Webhook-Replay") == "true" {
			n++
		}
	}
	return n
}

func TestAdminAPIListShowReplayCounts(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(adminSite(be, 4))

	var ids []string
	for range 3 {
		id, body := paymentEvent(t)
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("async event: %d %v", code, answer)
		}
		ids = append(ids, id)
	}
	sub := fixture(t, "sublytics", "order_updated")
	code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, sub, nil)
	if code != http.StatusOK {
		t.Fatalf("sync event: %d %v", code, answer)
	}
	subID, _ := answer["id"].(string)
	// The store, which the status filters below read, records a delivery
	// after the backend has answered it.
	for _, id := range ids {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}

	// List, with and without filters, and paging.
	var all listed
	if code := adminGet(t, gw, "/webhooks/events", &all); code != http.StatusOK || len(all.Events) != 4 {
		t.Fatalf("list: %d %+v", code, all)
	}
	var async listed
	adminGet(t, gw, "/webhooks/events?source=/usaepay&status=delivered", &async)
	if len(async.Events) != 3 {
		t.Fatalf("filtered list: %+v", async)
	}
	var page listed
	adminGet(t, gw, "/webhooks/events?limit=3", &page)
	if len(page.Events) != 3 || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	var rest listed
	adminGet(t, gw, "/webhooks/events?limit=3&cursor="+url.QueryEscape(page.NextCursor), &rest)
	if len(rest.Events) != 1 || rest.NextCursor != "" {
		t.Fatalf("second page: %+v", rest)
	}
	var bad map[string]any
	if code := adminGet(t, gw, "/webhooks/events?status=bogus", &bad); code != http.StatusBadRequest {
		t.Fatalf("bad status filter: %d %v", code, bad)
	}

	// Show: record, canonical event, headers without secrets, attempts,
	// raw body.
	var shown struct {
		ID         string              `json:"id"`
		Status     string              `json:"status"`
		Event      map[string]any      `json:"event"`
		Headers    map[string][]string `json:"headers"`
		Deliveries []struct {
			Destination string           `json:"destination"`
			Attempts    []map[string]any `json:"attempts"`
		} `json:"deliveries"`
		RawBody string `json:"raw_body"`
	}
	if code := adminGet(t, gw, "/webhooks/event?source=/usaepay&id="+ids[0], &shown); code != http.StatusOK {
		t.Fatalf("show: %d", code)
	}
	if shown.ID != ids[0] || shown.Status != "delivered" || shown.Event["id"] != ids[0] ||
		len(shown.Deliveries) != 1 || len(shown.Deliveries[0].Attempts) != 1 || !strings.Contains(shown.RawBody, ids[0]) {
		t.Fatalf("show: %+v", shown)
	}
	for name := range shown.Headers {
		if strings.EqualFold(name, "X-Signature") {
			t.Fatalf("stored headers carry the signature: %v", shown.Headers)
		}
	}
	if code := adminGet(t, gw, "/webhooks/event?source=/usaepay&id=nope", &bad); code != http.StatusNotFound {
		t.Fatalf("show unknown: %d %v", code, bad)
	}

	// Counts.
	var counts struct {
		Counts map[string]int `json:"counts"`
		Total  int            `json:"total"`
	}
	if code := adminGet(t, gw, "/webhooks/counts", &counts); code != http.StatusOK || counts.Counts["delivered"] != 4 || counts.Total != 4 {
		t.Fatalf("counts: %d %+v", code, counts)
	}

	// A dry run by id shows the request masked.
	var raw json.RawMessage
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"source": "/usaepay", "id": ids[0], "dry_run": true}, &raw); code != http.StatusOK {
		t.Fatalf("dry run by id: %d %s", code, raw)
	}
	noFullSignature(t, onlyResult(t, raw))

	// Replay by id: the backend sees it again, marked as a replay.
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"source": "/usaepay", "id": ids[0]}, &raw); code != http.StatusOK {
		t.Fatalf("replay: %d %s", code, raw)
	}
	raw = onlyResult(t, raw)
	noFullSignature(t, raw)
	var one replayed
	if err := json.Unmarshal(raw, &one); err != nil {
		t.Fatal(err)
	}
	if one.Attempt == nil || one.Attempt.Status != http.StatusOK || be.replays(ids[0]) != 1 || be.count(ids[0]) != 2 {
		t.Fatalf("replay by id: %+v; backend saw %d replays", one, be.replays(ids[0]))
	}

	// A dry run by filter sends nothing.
	before := len(be.received())
	var dry replayed
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"filter": map[string]any{"source": "/usaepay"}, "dry_run": true}, &dry); code != http.StatusOK {
		t.Fatalf("dry run: %d %+v", code, dry)
	}
	if !dry.DryRun || dry.Matched != 3 || dry.Delivered != 3 {
		t.Fatalf("dry run: %+v", dry)
	}
	// A replay sends before it answers, so a dry run that sent would show.
	if n := len(be.received()); n != before {
		t.Fatalf("dry run reached the backend: %d requests, was %d", n, before)
	}

	// Replay by filter.
	var bulk replayed
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"filter": map[string]any{"source": "/usaepay", "status": "delivered"}}, &bulk); code != http.StatusOK {
		t.Fatalf("bulk replay: %d %+v", code, bulk)
	}
	if bulk.Matched != 3 || bulk.Delivered != 3 || bulk.Failed != 0 {
		t.Fatalf("bulk replay: %+v", bulk)
	}
	for i, id := range ids {
		want := 1
		if i == 0 {
			want = 2
		}
		if got := be.replays(id); got != want {
			t.Errorf("event %s: %d replays, want %d", id, got, want)
		}
	}

	// Refusals.
	var refused map[string]any
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"source": "/sublytics", "id": subID}, &refused); code != http.StatusConflict ||
		!strings.Contains(fmt.Sprint(refused["error"]), "async route with upstreams") {
		t.Fatalf("replay of a sync route's event: %d %v", code, refused)
	}
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"source": "/usaepay", "id": "nope"}, &refused); code != http.StatusNotFound {
		t.Fatalf("replay of an unknown event: %d %v", code, refused)
	}
	if code := adminPost(t, gw, "/webhooks/purge", map[string]any{}, &refused); code != http.StatusBadRequest {
		t.Fatalf("purge without a filter: %d %v", code, refused)
	}
}

func TestAdminCLIAgainstRunningCaddy(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(adminSite(be, 4))
	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("event: %d %v", code, answer)
	}
	// The listing below reads the store, which records the delivery
	// after the backend's answer.
	waitStatus(t, gw, "/usaepay", id, "delivered")

	addr := fmt.Sprintf("127.0.0.1:%d", gw.Admin)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(testcaddy.Binary(t), append([]string{"webhooks"}, args...)...)
		cmd.Dir = gw.Dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy webhooks %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	out := cli("list", "--address", addr)
	if !strings.Contains(out, "RECEIVED") || !strings.Contains(out, id) || !strings.Contains(out, "delivered") {
		t.Fatalf("list:\n%s", out)
	}
	out = cli("counts", "--address", addr)
	if !strings.Contains(out, "delivered") || !strings.Contains(out, "total") {
		t.Fatalf("counts:\n%s", out)
	}
	// Without --address the admin address comes from the config, as for
	// caddy reload.
	out = cli("counts", "--config", "Caddyfile", "--adapter", "caddyfile")
	if !strings.Contains(out, "total") {
		t.Fatalf("counts via --config:\n%s", out)
	}
	out = cli("show", "--address", addr, "/usaepay", id)
	if !regexp.MustCompile(`status +delivered\n`).MatchString(out) || !strings.Contains(out, "raw body:") || !strings.Contains(out, id) || strings.Contains(out, "0001-01-01") {
		t.Fatalf("show:\n%s", out)
	}
	out = cli("show", "--address", addr, "--json", "/usaepay", id)
	if !strings.Contains(out, `"raw_body"`) || !strings.Contains(out, id) || !strings.Contains(out, `"latency_ms": `) || strings.Contains(out, "0001-01-01") {
		t.Fatalf("show --json:\n%s", out)
	}
	out = cli("replay", "--address", addr, "--dry-run", "/usaepay", id)
	if !strings.Contains(out, `"dry_run": true`) || be.replays(id) != 0 {
		t.Fatalf("dry-run replay:\n%s", out)
	}
	noFullSignature(t, onlyResult(t, []byte(out)))
	out = cli("replay", "--address", addr, "/usaepay", id)
	if be.replays(id) != 1 {
		t.Fatalf("replay did not reach the backend:\n%s", out)
	}

	// An error from the API is a failing command with the API's message.
	cmd := exec.Command(testcaddy.Binary(t), "webhooks", "show", "--address", addr, "/usaepay", "missing")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no event /usaepay missing") {
		t.Fatalf("show of an unknown event: %v\n%s", err, out)
	}
}

// scrape returns the samples of the admin /metrics endpoint whose name is
// name and whose labels include every k="v" of labels, summed.
func scrape(t *testing.T, gw *testcaddy.Instance, name string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(gw.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	return sum, found
}

func TestAdminMetricsAcrossReload(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(adminSite(be, 4))

	// A send right after a reload may meet a keep-alive connection that the
	// old config's server is closing: it is sent again, as the provider
	// would, and the resend may find the first copy stored.
	send := func() string {
		id, body := paymentEvent(t)
		code, answer, err := postRetrying(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
		if err != nil || (code != http.StatusAccepted && answer["status"] != "duplicate") {
			t.Fatalf("event: %d %v %v", code, answer, err)
		}
		testwait.For(t, "delivery", func() bool { return be.deliveredOK(id) })
		return id
	}
	send()
	send()
	if code, _ := post(t, gw.BaseURL()+"/hooks/usaepay", []byte(`{}`), http.Header{"X-Signature": {"00"}}); code != http.StatusUnauthorized {
		t.Fatalf("forged request: %d", code)
	}

	check := func(accepted, delivered float64) {
		t.Helper()
		if v, ok := scrape(t, gw, "webhook_gateway_received_total", `provider="usaepay"`, `outcome="accepted"`); !ok || v != accepted {
			t.Errorf("received accepted = %v (%v), want %v", v, ok, accepted)
		}
		if v, ok := scrape(t, gw, "webhook_gateway_received_total", `outcome="unauthorized"`); !ok || v != 1 {
			t.Errorf("received unauthorized = %v (%v), want 1", v, ok)
		}
		if v, ok := scrape(t, gw, "webhook_gateway_deliveries_total", `source="/usaepay"`, `result="delivered"`); !ok || v != delivered {
			t.Errorf("deliveries delivered = %v (%v), want %v", v, ok, delivered)
		}
		if v, ok := scrape(t, gw, "webhook_gateway_delivery_duration_seconds_count", `source="/usaepay"`); !ok || v != delivered {
			t.Errorf("delivery duration count = %v (%v), want %v", v, ok, delivered)
		}
		if v, ok := scrape(t, gw, "webhook_gateway_queue_depth"); !ok || v != 0 {
			t.Errorf("queue depth = %v (%v), want 0", v, ok)
		}
		if v, ok := scrape(t, gw, "webhook_gateway_dead_events"); !ok || v != 0 {
			t.Errorf("dead events = %v (%v), want 0", v, ok)
		}
	}
	check(2, 2)

	// A reload gives the config a fresh registry: the gateway's series
	// are there again, with their counts carried over.
	if err := gw.Reload(adminSite(be, 6)); err != nil {
		t.Fatal(err)
	}
	send()
	check(3, 3)
	if err := gw.Reload(adminSite(be, 4)); err != nil {
		t.Fatal(err)
	}
	check(3, 3)

	// The admin API follows the reload too.
	var all listed
	if code := adminGet(t, gw, "/webhooks/events", &all); code != http.StatusOK || len(all.Events) != 3 {
		t.Fatalf("list after reloads: %d %+v", code, all)
	}
	if strings.Contains(gw.Output(), "duplicate metrics collector registration") {
		t.Fatalf("duplicate registration:\n%s", gw.Output())
	}
}

// TestRetentionReachesStoredRecords checks that events are stored with
// their route's retention, and with the default week on a route that sets
// none.
func TestRetentionReachesStoredRecords(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(strings.Replace(adminSite(be, 4), "workers 4", "workers 4\n\t\t\tretention 36h", 1))

	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("async event: %d %v", code, answer)
	}
	sub := fixture(t, "sublytics", "order_updated")
	code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, sub, nil)
	if code != http.StatusOK {
		t.Fatalf("sync event: %d %v", code, answer)
	}
	subID, _ := answer["id"].(string)
	testwait.For(t, "async delivery", func() bool { return be.deliveredOK(id) })

	for _, tc := range []struct {
		source, id string
		want       time.Duration
	}{
		{"/usaepay", id, 36 * time.Hour},
		{"/sublytics", subID, 7 * 24 * time.Hour},
	} {
		var shown struct {
			Status    string        `json:"status"`
			Retention time.Duration `json:"retention"`
		}
		if code := adminGet(t, gw, "/webhooks/event?source="+tc.source+"&id="+url.QueryEscape(tc.id), &shown); code != http.StatusOK {
			t.Fatalf("show %s %s: %d", tc.source, tc.id, code)
		}
		if shown.Status != "delivered" || shown.Retention != tc.want {
			t.Errorf("%s event: status %s, retention %v, want delivered with %v", tc.source, shown.Status, shown.Retention, tc.want)
		}
	}
}
