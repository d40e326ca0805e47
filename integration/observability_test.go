package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// alertSite has an async route whose failed attempts are retried every
// 100-200ms for as long as a test needs, and a sync route on its own
// backend.
func alertSite(async, sync *backend) string {
	return fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			deliver async
			upstream %s/events
			retry {
				attempts 1000
				initial_delay 100ms
				max_delay 200ms
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
`, async.URL, sync.host())
}

// TestMetricsForAlertRules checks, through the binary, the series the
// alert rules of docs/ops need: the age of the oldest waiting event, the
// sync answers by status, and the counters that exist at 0 from the start.
func TestMetricsForAlertRules(t *testing.T) {
	asyncBE, syncBE := newBackend(t), newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(alertSite(asyncBE, syncBE))

	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"webhook_gateway_oldest_pending_age_seconds", []string{`source="/usaepay"`}},
		{"webhook_gateway_dead_total", []string{`source="/usaepay"`, `reason="gone"`}},
		{"webhook_gateway_deliveries_total", []string{`source="/usaepay"`, `result="failed"`}},
		{"webhook_gateway_sync_answers_total", []string{`source="/sublytics"`, `code="502"`}},
		{"webhook_gateway_received_total", []string{`provider="usaepay"`, `outcome="accepted"`}},
	} {
		if v, ok := scrape(t, gw, c.name, c.labels...); !ok || v != 0 {
			t.Errorf("before any event: %s%v = %v (found %v), want 0", c.name, c.labels, v, ok)
		}
	}
	if _, ok := scrape(t, gw, "webhook_gateway_oldest_pending_age_seconds", `source="/sublytics"`); ok {
		t.Error("a sync route has an oldest-pending age")
	}

	// An event its backend refuses waits, retrying: its age shows.
	asyncBE.setStatus(http.StatusServiceUnavailable)
	sent := time.Now()
	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("event: %d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", id, "retrying")
	var age float64
	testwait.For(t, "the oldest-pending age to show the retrying event", func() bool {
		age, _ = scrape(t, gw, "webhook_gateway_oldest_pending_age_seconds", `source="/usaepay"`)
		return age > 0
	})
	// Measured from the event's receipt, which came after sent.
	if most := time.Since(sent).Seconds(); age > most {
		t.Fatalf("age %vs, but the event was sent %vs ago", age, most)
	}
	// Delivered, it no longer waits.
	asyncBE.setStatus(http.StatusOK)
	waitStatus(t, gw, "/usaepay", id, "delivered")
	testwait.For(t, "the oldest-pending age back to 0", func() bool {
		v, ok := scrape(t, gw, "webhook_gateway_oldest_pending_age_seconds", `source="/usaepay"`)
		return ok && v == 0
	})

	// A sync route's answers, by status: 502 while its backend fails, 200
	// once the provider's retry gets through.
	sub := fixture(t, "sublytics", "order_updated")
	syncBE.setStatus(http.StatusInternalServerError)
	if code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, sub, nil); code != http.StatusBadGateway {
		t.Fatalf("sync with a failing backend: %d %v", code, answer)
	}
	syncBE.setStatus(http.StatusOK)
	if code, answer := post(t, gw.BaseURL()+"/hooks/sublytics/"+sublyticsToken, sub, nil); code != http.StatusOK {
		t.Fatalf("sync retry: %d %v", code, answer)
	}
	for code, want := range map[string]float64{"502": 1, "200": 1} {
		if v, ok := scrape(t, gw, "webhook_gateway_sync_answers_total", `source="/sublytics"`, `code="`+code+`"`); !ok || v != want {
			t.Errorf("sync answers %s = %v (found %v), want %v", code, v, ok, want)
		}
	}
	// The async route's answers are not sync answers.
	if v, ok := scrape(t, gw, "webhook_gateway_sync_answers_total", `source="/usaepay"`); ok {
		t.Errorf("async route counted as sync answers: %v", v)
	}
}

// promServer is a Prometheus server run by a test.
type promServer struct {
	url string
}

// startPrometheus runs Debian's Prometheus against the gateway's metrics
// endpoint with rules as its rule file, scraping and evaluating every
// second, its storage in a temp directory; it is stopped at the test's end.
func startPrometheus(t *testing.T, gw *testcaddy.Instance, rules string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not found (Debian package prometheus): the alert rules are not run against a real server")
	}
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "alerts.yml")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: caddy
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, rulesPath, gw.Admin)
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testcaddy.FreePort(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	output := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	cmd := exec.Command(bin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", output())
		}
	})
	p := &promServer{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	testwait.For(t, "prometheus ready", func() bool {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", output())
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// api calls Prometheus's HTTP API and decodes its data.
func (p *promServer) api(t *testing.T, path string, data any) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Status != "success" {
		t.Fatalf("prometheus %s: %d %v %s", path, resp.StatusCode, err, answer.Error)
	}
	if err := json.Unmarshal(answer.Data, data); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promServer) alerts(t *testing.T) []promAlert {
	t.Helper()
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", &data)
	return data.Alerts
}

// lastEvaluation is when Prometheus last evaluated the rule group.
func (p *promServer) lastEvaluation(t *testing.T) time.Time {
	t.Helper()
	var data struct {
		Groups []struct {
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	p.api(t, "/api/v1/rules", &data)
	if len(data.Groups) != 1 {
		t.Fatalf("rule groups: %+v", data)
	}
	return data.Groups[0].LastEvaluation
}

// forClause is a rule's `for:` line.
var forClause = regexp.MustCompile(`(?m)^(\s+for:\s*)\S+\s*$`)

// TestPrometheusFiresDeadEventAlert runs the shipped alert rules in a real
// Prometheus scraping a real gateway, and sees WebhookEventsDead fire when
// a backend's 410 Gone kills an event.
//
// The rules run as shipped except that every `for:` becomes 1s, so the
// test does not wait out durations meant for production (the dead-event
// rule has none; the others would fire too late to be seen here).
func TestPrometheusFiresDeadEventAlert(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus not found (Debian package prometheus): the alert rules are not run against a real server")
	}
	shipped, err := os.ReadFile(filepath.Join("..", "docs", "ops", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := forClause.ReplaceAllString(string(shipped), "${1}1s")
	if !strings.Contains(rules, "for: 1s") || strings.Contains(rules, "for: 1m") {
		t.Fatal("the test copy of the rules did not get its shorter for:")
	}

	asyncBE, syncBE := newBackend(t), newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(alertSite(asyncBE, syncBE))
	prom := startPrometheus(t, gw, rules)

	// Prometheus has scraped the dead counter at 0 and evaluated the rules
	// since: no dead-event alert yet.
	query := "/api/v1/query?query=" + url.QueryEscape(`webhook_gateway_dead_total{source="/usaepay",reason="gone"}`)
	var scraped time.Time
	testwait.For(t, "prometheus to scrape the dead counter", func() bool {
		var data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		prom.api(t, query, &data)
		scraped = time.Now()
		return len(data.Result) == 1 && data.Result[0].Value[1] == "0"
	})
	testwait.For(t, "a rule evaluation after the scrape", func() bool {
		return prom.lastEvaluation(t).After(scraped)
	})
	for _, a := range prom.alerts(t) {
		if a.Labels["alertname"] == "WebhookEventsDead" {
			t.Fatalf("dead-event alert before any event died: %+v", a)
		}
	}

	// A backend answering 410 Gone kills the event at its first attempt.
	asyncBE.setStatus(http.StatusGone)
	id, body := paymentEvent(t)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
		t.Fatalf("event: %d %v", code, answer)
	}
	waitStatus(t, gw, "/usaepay", id, "dead")

	var fired promAlert
	testwait.For(t, "WebhookEventsDead firing in prometheus", func() bool {
		for _, a := range prom.alerts(t) {
			if a.Labels["alertname"] == "WebhookEventsDead" && a.State == "firing" {
				fired = a
				return true
			}
		}
		return false
	})
	want := map[string]string{"alertname": "WebhookEventsDead", "source": "/usaepay", "reason": "gone", "severity": "warning"}
	if len(fired.Labels) != len(want) {
		t.Fatalf("alert labels %v, want %v", fired.Labels, want)
	}
	for k, v := range want {
		if fired.Labels[k] != v {
			t.Fatalf("alert labels %v, want %v", fired.Labels, want)
		}
	}
}
