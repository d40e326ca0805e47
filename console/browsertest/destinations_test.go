package browsertest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// deliveryStatus is the status of the delivery of a /usaepay event to
// destination, as the admin API shows it ("" before it has one).
func deliveryStatus(t *testing.T, gw *testcaddy.Instance, id, destination string) string {
	t.Helper()
	resp, err := http.Get(gw.AdminURL() + "/webhooks/event?source=%2Fusaepay&id=" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ev struct {
		Deliveries []struct{ Destination, Status string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&ev)
	for _, d := range ev.Deliveries {
		if d.Destination == destination {
			return d.Status
		}
	}
	return ""
}

// An operator on the destinations page sees an ordered destination with a
// parked lane, pauses and resumes it, follows the parked lanes to the dead
// head and skips it; the event behind it is then delivered. The event's
// page shows its delivery to the destination with its lane.
func TestBrowserDestinationsPauseAndSkip(t *testing.T) {
	chromium(t)
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
			destination ledger {
				upstream ` + be.URL + `/hooks
				timeout 5s
				order_by subject
				retry {
					attempts 1
				}
				breaker {
					failures 1000
				}
			}
		}
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
	be.setStatus(http.StatusInternalServerError)
	sale := payment(t, gw, "tx-lane-1", "sale")
	testwait.For(t, "the sale dead at the ledger", func() bool { return deliveryStatus(t, gw, sale, "ledger") == "dead" })
	void := payment(t, gw, "tx-lane-1", "void")
	be.setStatus(http.StatusOK)

	ctx := newBrowser(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(consoleUser+":"+consolePassword)))
	consoleURL := gw.BaseURL() + "/console/"
	row := `#destinations tr[data-destination="ledger"]`
	within(t, ctx, "destinations page", chromedp.Navigate(consoleURL+"destinations"), chromedp.WaitVisible(chromedp.CSS(row)))
	cell := func(class string) string {
		return strings.TrimSpace(eval[string](t, ctx, `document.querySelector('`+row+` .`+class+`').textContent`))
	}
	if s, q, p := cell("state"), cell("queue-depth"), cell("parked"); s != "healthy" || q != "1" || p != "1" {
		t.Errorf("ledger shows state %q, queue depth %q, parked lanes %q; want healthy, 1, 1", s, q, p)
	}
	inert(t, ctx, "destinations")

	follow(t, ctx, row+` button.pause`)
	if s := cell("state"); !strings.Contains(s, "paused") || !strings.Contains(s, "by an operator") {
		t.Errorf("after Pause the ledger shows %q", s)
	}
	follow(t, ctx, row+` button.resume`)
	if s := cell("state"); s != "healthy" {
		t.Errorf("after Resume the ledger shows %q", s)
	}

	follow(t, ctx, row+` .parked a`)
	lane := `#lanes tr[data-lane="tx-lane-1"]`
	within(t, ctx, "parked lanes", chromedp.WaitVisible(chromedp.CSS(lane)))
	if got := eval[string](t, ctx, `document.querySelector('`+lane+` a').getAttribute('href')`); !strings.Contains(got, "id="+sale) {
		t.Errorf("the parked lane's head links to %q, want the sale %s", got, sale)
	}
	if got := strings.TrimSpace(eval[string](t, ctx, `document.querySelector('`+lane+` .behind').textContent`)); got != "1" {
		t.Errorf("waiting behind the head: %q, want 1", got)
	}
	inert(t, ctx, "lanes")

	follow(t, ctx, lane+` button.skip`)
	within(t, ctx, "no parked lane left", chromedp.WaitVisible(chromedp.ID("no-lanes")))
	testwait.For(t, "the void delivered to the ledger", func() bool { return deliveryStatus(t, gw, void, "ledger") == "delivered" })

	within(t, ctx, "the sale's page", chromedp.Navigate(consoleURL+"event?source=%2Fusaepay&id="+sale), chromedp.WaitVisible(chromedp.CSS(`section.delivery[data-destination="ledger"]`)))
	if got := eval[string](t, ctx, `document.querySelector('section.delivery[data-destination="ledger"] h2').textContent`); !strings.Contains(got, "skipped") {
		t.Errorf("the sale's delivery to the ledger is headed %q, want skipped", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('section.delivery[data-destination="ledger"] .lane').textContent`); !strings.Contains(got, "tx-lane-1, sequence 1") {
		t.Errorf("the sale's lane shows %q", got)
	}
}
