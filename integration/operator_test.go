package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// alertReceiver is an on-call tool's webhook: it keeps the operator events
// the gateway posts.
type alertReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []alertEvent
}

// alertEvent is an operator event as received.
type alertEvent struct {
	SpecVersion string         `json:"specversion"`
	Type        string         `json:"type"`
	Source      string         `json:"source"`
	Subject     string         `json:"subject"`
	Data        map[string]any `json:"data"`
	ContentType string         `json:"-"`
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	a := &alertReceiver{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev alertEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev.ContentType = r.Header.Get("Content-Type")
		a.mu.Lock()
		a.got = append(a.got, ev)
		a.mu.Unlock()
	}))
	t.Cleanup(a.Close)
	return a
}

// find returns the first event of typ whose data has every key of want
// with its value.
func (a *alertReceiver) find(typ string, want map[string]string) (alertEvent, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
next:
	for _, ev := range a.got {
		if ev.Type != typ {
			continue
		}
		for k, v := range want {
			if fmt.Sprint(ev.Data[k]) != v {
				continue next
			}
		}
		return ev, true
	}
	return alertEvent{}, false
}

func (a *alertReceiver) wait(t *testing.T, typ string, want map[string]string) alertEvent {
	t.Helper()
	var ev alertEvent
	testwait.For(t, fmt.Sprintf("a %s alert with %v", typ, want), func() bool {
		var ok bool
		ev, ok = a.find(typ, want)
		return ok
	})
	return ev
}

// webhooksCLI runs `caddy webhooks args...` against gw's admin API.
func webhooksCLI(t *testing.T, gw *testcaddy.Instance, args ...string) string {
	t.Helper()
	full := append([]string{"webhooks"}, args[0], "--address", strings.TrimPrefix(gw.AdminURL(), "http://"))
	full = append(full, args[1:]...)
	out, err := exec.Command(testcaddy.Binary(t), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

// TestOperatorSeesDestinations: a gateway with an alerts URL and two
// destinations, an ordered ledger whose backend refuses one sale and a crm
// whose backend is down. The alert receiver gets the dead delivery, the
// parked lane and the crm's pause as CloudEvents; the admin API and
// `caddy webhooks` show the destinations and the parked lane; an operator
// pauses and resumes the ledger (alerted too) and skips the dead sale, and
// the void behind it is delivered.
func TestOperatorSeesDestinations(t *testing.T) {
	alerts := newAlertReceiver(t)
	ledger := newLaneBackend(t, 0)
	down := fmt.Sprintf("http://127.0.0.1:%d", testcaddy.FreePort(t)) // nothing listens
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Raw = true
	gw.Start(`{
	admin 127.0.0.1:{{ADMIN}}
	auto_https off
	persist_config off
	storage file_system {{DIR}}/data
	webhook_gateway {
		alerts ` + alerts.URL + `/oncall
		alerts_source /gateway-test
	}
}

` + asyncPaymentSite(`
			destination ledger {
				upstream `+ledger.URL+`
				workers 4
				timeout 5s
				order_by subject
				retry {
					attempts 2
					initial_delay 20ms
					max_delay 50ms
				}
				breaker {
					failures 1000
				}
			}`, fastDestination("crm", down, "")))

	postOne := func(typ, subject string) string {
		t.Helper()
		id, body := paymentEventOf(t, typ, subject, "5.00")
		if typ == "transaction.sale.success" {
			ledger.setRefuse(id, true)
		}
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("post: %d %v", code, answer)
		}
		return id
	}
	sale, void := postOne("transaction.sale.success", "tx-a"), postOne("transaction.sale.voided", "tx-a")

	// The alerts: the sale dead at the ledger, its lane parked, the crm
	// paused by its breaker.
	dead := alerts.wait(t, "com.webhookgw.event.dead", map[string]string{"destination": "ledger", "source": "/usaepay", "id": sale})
	if dead.SpecVersion != "1.0" || dead.Subject != "/usaepay "+sale || dead.Source != "/gateway-test" || dead.ContentType != "application/cloudevents+json" || dead.Data["reason"] != "attempts_exhausted" {
		t.Errorf("dead alert: %+v", dead)
	}
	alerts.wait(t, "com.webhookgw.lane.parked", map[string]string{"destination": "ledger", "lane": "tx-a", "id": sale})
	paused := alerts.wait(t, "com.webhookgw.destination.paused", map[string]string{"destination": "crm", "by": "breaker"})
	if paused.Subject != "crm" {
		t.Errorf("paused alert: %+v", paused)
	}

	// The admin API: each destination's state and counts.
	type destination struct {
		Name             string `json:"name"`
		State            string `json:"state"`
		QueueDepth       int    `json:"queue_depth"`
		Dead             int    `json:"dead"`
		ParkedLanes      int    `json:"parked_lanes"`
		PausedByOperator bool   `json:"paused_by_operator"`
		OldestPending    string `json:"oldest_pending"`
	}
	destinations := func() map[string]destination {
		var out struct {
			Destinations []destination `json:"destinations"`
		}
		if code := adminGet(t, gw, "/webhooks/destinations", &out); code != http.StatusOK {
			t.Fatalf("destinations: %d", code)
		}
		m := map[string]destination{}
		for _, d := range out.Destinations {
			m[d.Name] = d
		}
		return m
	}
	ds := destinations()
	if l := ds["ledger"]; l.State != "healthy" || l.Dead != 1 || l.ParkedLanes != 1 || l.QueueDepth != 1 {
		t.Errorf("ledger: %+v; want healthy, 1 dead, 1 parked lane, the void waiting", l)
	}
	if c := ds["crm"]; c.State != "paused" || c.QueueDepth != 2 || c.OldestPending == "" {
		t.Errorf("crm: %+v; want paused with both events waiting", c)
	}
	var lanes struct {
		Lanes []struct {
			Key  string `json:"key"`
			Head struct {
				ID string `json:"id"`
			} `json:"head"`
			Behind int `json:"behind"`
		} `json:"lanes"`
	}
	if code := adminGet(t, gw, "/webhooks/lanes?destination=ledger", &lanes); code != http.StatusOK || len(lanes.Lanes) != 1 ||
		lanes.Lanes[0].Key != "tx-a" || lanes.Lanes[0].Head.ID != sale || lanes.Lanes[0].Behind != 1 {
		t.Fatalf("lanes of ledger: %d %+v", code, lanes)
	}

	// The CLI shows the same.
	out := webhooksCLI(t, gw, "destinations")
	if !regexp.MustCompile(`(?m)^crm\s+paused \(breaker (open|half-open)\)\s+2\s`).MatchString(out) || !regexp.MustCompile(`(?m)^ledger\s+healthy\s+1\s.*\s1\s+1$`).MatchString(out) {
		t.Errorf("caddy webhooks destinations:\n%s", out)
	}
	if out := webhooksCLI(t, gw, "lanes", "ledger"); !strings.Contains(out, "tx-a") || !strings.Contains(out, sale) {
		t.Errorf("caddy webhooks lanes ledger:\n%s", out)
	}
	if out := webhooksCLI(t, gw, "show", "/usaepay", sale); !strings.Contains(out, "to ledger: dead") || !strings.Contains(out, "lane      tx-a, sequence 1 (parked") {
		t.Errorf("caddy webhooks show:\n%s", out)
	}

	// An operator's pause and resume, alerted.
	if out := webhooksCLI(t, gw, "pause", "ledger"); !strings.Contains(out, "ledger paused") {
		t.Errorf("pause: %s", out)
	}
	alerts.wait(t, "com.webhookgw.destination.paused", map[string]string{"destination": "ledger", "by": "operator"})
	if l := destinations()["ledger"]; l.State != "paused" || !l.PausedByOperator {
		t.Errorf("ledger after pause: %+v", l)
	}
	webhooksCLI(t, gw, "resume", "ledger")
	alerts.wait(t, "com.webhookgw.destination.resumed", map[string]string{"destination": "ledger", "by": "operator"})

	// The skip lets the lane go on: the void reaches the ledger.
	if all, _ := ledger.count(void); all != 0 {
		t.Fatalf("the void went to the ledger before the sale: %d requests", all)
	}
	if out := webhooksCLI(t, gw, "skip", "/usaepay", sale, "--destination", "ledger"); !strings.Contains(out, "skipped") {
		t.Errorf("skip: %s", out)
	}
	testwait.For(t, "the void delivered to the ledger", func() bool {
		ev, _ := showEvent(t, gw, "/usaepay", void)
		d := ev.delivery("ledger")
		return d != nil && d.Status == "delivered"
	})
	if l := destinations()["ledger"]; l.Dead != 0 || l.ParkedLanes != 0 {
		t.Errorf("ledger after the skip: %+v", l)
	}
}
