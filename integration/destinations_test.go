package integration

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// twoAccountsSite has two async routes of one provider writing one source
// (two merchant accounts, the same credential scheme), each delivering to a
// destination of its own: account-a signed, to backend a; account-b
// unsigned, to backend b. workers varies the config between reloads.
func twoAccountsSite(a, b *backend, workers int) string {
	route := func(path, dest, upstream, extra string) string {
		return fmt.Sprintf(`
	route %s {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			destination %s {
				upstream %s/events
				workers %d
				%s
				retry {
					attempts 1000
					initial_delay 50ms
					max_delay 200ms
				}
			}
		}
	}`, path, dest, upstream, workers, extra)
	}
	return "http://127.0.0.1:{{PORT}} {" +
		route("/hooks/a", "account-a", a.URL, "signing_secret {env.TEST_SIGNING_SECRET}") +
		route("/hooks/b", "account-b", b.URL, "") + "\n}\n"
}

// onlyOwn checks that every event of own reached be exactly n times and no
// event of other reached it.
func onlyOwn(t *testing.T, name string, be *backend, own, other []string, n int) {
	t.Helper()
	for _, id := range own {
		if got := be.count(id); got != n {
			t.Errorf("%s: event %s arrived %d times, want %d", name, id, got, n)
		}
	}
	for _, id := range other {
		if got := be.count(id); got != 0 {
			t.Errorf("%s: the other account's event %s arrived %d times", name, id, got)
		}
	}
}

// TestDestinationsKeepTwoAccountsApart: two routes sharing a source, each
// with its own destination and backend. Each backend gets only its route's
// events, signed with its destination's secret: on async delivery, on
// replay by id and by filter, and across a reload that happens while one
// backend is down. An operator may send an event to the other destination
// by naming it; the event keeps its own status.
func TestDestinationsKeepTwoAccountsApart(t *testing.T) {
	beA, beB := newBackend(t), newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(twoAccountsSite(beA, beB, 4))

	send := func(path string, n int) []string {
		t.Helper()
		var ids []string
		for range n {
			id, body := paymentEvent(t)
			if code, answer := post(t, gw.BaseURL()+path, body, signedHeader(body)); code != http.StatusAccepted {
				t.Fatalf("%s: %d %v", path, code, answer)
			}
			ids = append(ids, id)
		}
		return ids
	}
	idsA, idsB := send("/hooks/a", 15), send("/hooks/b", 15)
	for _, id := range append(append([]string(nil), idsA...), idsB...) {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}
	onlyOwn(t, "backend a", beA, idsA, idsB, 1)
	onlyOwn(t, "backend b", beB, idsB, idsA, 1)
	wh, err := standardwebhooks.NewWebhook(signingSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range beA.received() {
		if err := wh.Verify(r.Body, r.Header); err != nil {
			t.Fatalf("a delivery to account-a is not signed with its secret: %v", err)
		}
	}
	for _, r := range beB.received() {
		if r.Header.Get("Webhook-Signature") != "" {
			t.Fatal("a delivery to account-b carries a signature: account-a's secret was used")
		}
	}

	// Replay by id goes to the event's own destination.
	for _, c := range []struct {
		id, dest string
		be       *backend
	}{{idsA[0], "account-a", beA}, {idsB[0], "account-b", beB}} {
		if code, one := replayByID(t, gw, map[string]any{"source": "/usaepay", "id": c.id}); code != http.StatusOK ||
			one.Destination != c.dest || one.Attempt == nil || one.Attempt.Status != http.StatusOK {
			t.Fatalf("replay of %s: %d %+v", c.id, code, one)
		}
		if c.be.replays(c.id) != 1 {
			t.Fatalf("the replay of %s did not reach its destination's backend", c.id)
		}
	}

	// Replay by filter: every event of the shared source, each to its own.
	var bulk struct {
		Matched, Delivered, Failed, Skipped int
	}
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"filter": map[string]any{"source": "/usaepay"}}, &bulk); code != http.StatusOK ||
		bulk.Matched != 30 || bulk.Delivered != 30 {
		t.Fatalf("replay by filter: %d %+v", code, bulk)
	}
	onlyOwn(t, "backend a after the replays", beA, idsA[1:], idsB, 2)
	onlyOwn(t, "backend b after the replays", beB, idsB[1:], idsA, 2)

	// Backend b goes down; its events wait for it, through a reload, and
	// never go to backend a.
	beB.setStatus(http.StatusServiceUnavailable)
	moreA, moreB := send("/hooks/a", 5), send("/hooks/b", 5)
	testwait.For(t, "account-b's new events tried", func() bool {
		for _, id := range moreB {
			if beB.count(id) == 0 {
				return false
			}
		}
		return true
	})
	if err := gw.Reload(twoAccountsSite(beA, beB, 3)); err != nil {
		t.Fatal(err)
	}
	beB.setStatus(http.StatusOK)
	moreA = append(moreA, send("/hooks/a", 5)...)
	moreB = append(moreB, send("/hooks/b", 5)...)
	for _, id := range append(append([]string(nil), moreA...), moreB...) {
		waitStatus(t, gw, "/usaepay", id, "delivered")
	}
	onlyOwn(t, "backend a across the reload", beA, moreA, append(moreB, idsB...), 1)
	for _, id := range moreB {
		if !beB.deliveredOK(id) {
			t.Errorf("account-b's event %s was not delivered to backend b", id)
		}
	}

	// Naming a destination sends the event there; its status stays its
	// own destination's.
	if code, named := replayByID(t, gw, map[string]any{"source": "/usaepay", "id": moreA[0], "destination": "account-b"}); code != http.StatusOK ||
		named.Destination != "account-b" || !named.Redirected || named.Status != "delivered" {
		t.Fatalf("replay of an account-a event to account-b: %d %+v", code, named)
	}
	if beB.count(moreA[0]) != 1 || beA.count(moreA[0]) != 1 {
		t.Fatalf("the named replay reached backend b %d times and backend a %d times, want 1 and 1", beB.count(moreA[0]), beA.count(moreA[0]))
	}
	attempts := waitStatus(t, gw, "/usaepay", moreA[0], "delivered")
	if last := attempts[len(attempts)-1]; last["destination"] != "account-b" {
		t.Fatalf("the named replay's attempt does not name its destination: %v", last)
	}
	var refused map[string]any
	if code := adminPost(t, gw, "/webhooks/replay", map[string]any{"source": "/usaepay", "id": moreA[0], "destination": "nowhere"}, &refused); code != http.StatusConflict {
		t.Fatalf("replay to an unknown destination: %d %v", code, refused)
	}
}

// TestAmbiguousDestinationsRefusedAtLoad: two routes sharing a source with
// route-level upstreams that differ would share the destination named after
// the source; the config is refused, naming both routes and what to do. So
// is one destination name given two upstreams.
func TestAmbiguousDestinationsRefusedAtLoad(t *testing.T) {
	beA, beB := newBackend(t), newBackend(t)
	shorthand := func(path, upstream string) string {
		return `
	route ` + path + ` {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + upstream + `
		}
	}`
	}
	err := testcaddy.New(t, gatewayEnv...).TryStart("http://127.0.0.1:{{PORT}} {" + shorthand("/hooks/a", beA.URL) + shorthand("/hooks/b", beB.URL) + "\n}\n")
	if err == nil {
		t.Fatal("two routes of one source with different upstreams loaded")
	}
	// Both routes are named by where they are configured.
	if n := len(regexp.MustCompile(`configured at \S*Caddyfile:\d+`).FindAllString(err.Error(), -1)); n < 3 {
		t.Errorf("load error names the routes' places %d times, want this route's twice and the other's once: %v", n, err)
	}
	// Caddy's log line quotes the error as a JSON string.
	for _, want := range []string{`destination \"/usaepay\"`, "one destination name with different settings", "different upstreams",
		beA.URL, beB.URL, "provider usaepay, auth hmac", "name each route's destination"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("load error does not say %q: %v", want, err)
		}
	}

	named := func(path, upstream string) string {
		return `
	route ` + path + ` {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			auth hmac {env.TEST_SIG_KEY}
			destination shop {
				upstream ` + upstream + `
			}
		}
	}`
	}
	err = testcaddy.New(t, gatewayEnv...).TryStart("http://127.0.0.1:{{PORT}} {" + named("/hooks/a", beA.URL) + named("/hooks/b", beB.URL) + "\n}\n")
	if err == nil || !strings.Contains(err.Error(), `destination \"shop\"`) || !strings.Contains(err.Error(), "different upstreams") {
		t.Fatalf("one destination name with two upstreams: %v", err)
	}
}
