package caddymodule

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The destination block parses into the same settings the route-level
// shorthand gives, and the shorthand is one destination named after the
// source.
func TestDestinationBlockAndShorthand(t *testing.T) {
	h := new(Handler)
	block := `webhook_gateway usaepay {
		source /usaepay
		auth none
		destination account-b {
			upstream http://127.0.0.1:9001/hooks http://127.0.0.1:9002/hooks
			signing_secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
			workers 4
			timeout 5s
			retry {
				attempts 7
				max_age 1h
			}
		}
	}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	if len(h.Destinations) != 1 {
		t.Fatalf("destinations: %+v", h.Destinations)
	}
	d := h.Destinations[0]
	if d.Name != "account-b" || len(d.Upstreams) != 2 || d.Workers != 4 || d.Timeout != caddy.Duration(5e9) ||
		d.Retry == nil || d.Retry.Attempts != 7 || d.SigningSecret == "" || len(h.Upstreams) != 0 {
		t.Fatalf("destination %+v (retry %+v)", d, d.Retry)
	}

	short := new(Handler)
	if err := short.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway usaepay {\n auth none\n upstream http://127.0.0.1:9001\n workers 3\n}")); err != nil {
		t.Fatal(err)
	}
	short.setDefaults()
	ds := short.destinations()
	if len(ds) != 1 || ds[0].Name != "/usaepay" || ds[0].Workers != 3 || ds[0].Upstreams[0] != "http://127.0.0.1:9001" || short.Deliver != "async" {
		t.Fatalf("shorthand destinations %+v, deliver %s", ds, short.Deliver)
	}

	for _, bad := range []string{
		"webhook_gateway {\n destination\n}",
		"webhook_gateway {\n destination a b {\n }\n}",
		"webhook_gateway {\n destination a {\n upstream\n }\n}",
		"webhook_gateway {\n destination a {\n colour red\n }\n}",
		"webhook_gateway {\n destination a {\n rate\n }\n}",
		"webhook_gateway {\n destination a {\n breaker {\n colour red\n }\n }\n}",
		"webhook_gateway {\n breaker on\n}",
		"webhook_gateway {\n breaker {\n failures none\n }\n}",
	} {
		if err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// rate and breaker parse in a destination block and at the route level
// (the shorthand destination), and reach the destination's settings.
func TestDestinationRateAndBreaker(t *testing.T) {
	h := new(Handler)
	block := `webhook_gateway usaepay {
		auth none
		destination ledger {
			upstream http://127.0.0.1:9001/hooks
			rate 50/s
			breaker {
				failures 3
				cooldown 2s
				max_cooldown 30s
			}
		}
	}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	d := h.Destinations[0]
	want := BreakerConfig{Failures: 3, Cooldown: caddy.Duration(2e9), MaxCooldown: caddy.Duration(30e9)}
	if d.Rate != "50/s" || d.Breaker == nil || *d.Breaker != want {
		t.Fatalf("destination %+v, breaker %+v", d, d.Breaker)
	}
	out, _ := json.Marshal(d)
	if !strings.Contains(string(out), `"rate":"50/s","breaker":{"failures":3,"cooldown":2000000000,"max_cooldown":30000000000}`) {
		t.Errorf("JSON: %s", out)
	}

	short := new(Handler)
	if err := short.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway usaepay {\n auth none\n upstream http://127.0.0.1:9001\n rate 100/m\n breaker {\n failures 2\n }\n}")); err != nil {
		t.Fatal(err)
	}
	ds := short.destinations()
	if ds[0].Rate != "100/m" || ds[0].Breaker == nil || ds[0].Breaker.Failures != 2 {
		t.Fatalf("shorthand %+v", ds[0])
	}
}

// Settings that cannot stand together are refused at load, naming what to
// change.
func TestDestinationSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ block, want string }{
		{"webhook_gateway usaepay {\n auth none\n upstream http://127.0.0.1:1\n destination a {\n upstream http://127.0.0.1:2\n }\n}", "upstream at the route level"},
		{"webhook_gateway usaepay {\n auth none\n workers 3\n destination a {\n upstream http://127.0.0.1:2\n }\n}", "workers at the route level"},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n }\n destination a {\n upstream http://127.0.0.1:3\n }\n}", "named twice"},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n filter event.data.amount >\n }\n}", `destination "a": filter: expression "event.data.amount >": 1:`},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n types \"\"\n }\n}", `destination "a": filter: types[0]`},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n order_by event.type == \"x\"\n }\n}", `destination "a": order_by:`},
		{"webhook_gateway usaepay {\n auth none\n deliver sync\n source ledger\n destination ledger {\n upstream http://127.0.0.1:2\n }\n}", "named after its source"},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n }\n}", "needs at least one upstream"},
		{"webhook_gateway usaepay {\n auth none\n destination /a {\n upstream http://127.0.0.1:2\n }\n}", "letters, digits"},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream 127.0.0.1:2\n }\n}", "absolute http or https URL"},
		{"webhook_gateway usaepay {\n auth none\n deliver async\n}", "needs at least one upstream, or a destination"},
		{"webhook_gateway usaepay {\n auth none\n rate 5/s\n destination a {\n upstream http://127.0.0.1:2\n }\n}", "rate at the route level"},
		{"webhook_gateway usaepay {\n auth none\n breaker {\n failures 2\n }\n destination a {\n upstream http://127.0.0.1:2\n }\n}", "breaker at the route level"},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n rate 50/sec\n }\n}", `destination "a": rate: throttle: bad rate "50/sec": the period "sec" is not s, m, h`},
		{"webhook_gateway usaepay {\n auth none\n upstream http://127.0.0.1:2\n rate 0/s\n}", `rate: throttle: bad rate "0/s"`},
		{"webhook_gateway usaepay {\n auth none\n destination a {\n upstream http://127.0.0.1:2\n breaker {\n cooldown 1m\n max_cooldown 10s\n }\n }\n}", `destination "a": breaker: throttle: bad breaker: max_cooldown 10s is shorter than cooldown 1m0s`},
		{"webhook_gateway usaepay {\n auth none\n deliver sync\n rate 5/s\n}", "rate and breaker protect an async destination"},
	} {
		_, err := provisionRoute(t, newConfig(t), dir, c.block)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v, want it to mention %q", c.block, err, c.want)
		}
	}
}

// One destination name is one place: two routes of one config giving it
// different upstreams or secrets are refused, naming both routes and why;
// two routes sharing a source with shorthand upstreams that differ are told
// to name their destinations. The same destination written twice loads, and
// configs loaded side by side (a reload) do not constrain each other.
func TestDestinationNamesAreOneNamespace(t *testing.T) {
	t.Setenv("DEST_TEST_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	dir := t.TempDir()
	route := func(source, dest, upstream, secret string) string {
		b := "webhook_gateway usaepay {\n source " + source + "\n auth none\n"
		if dest == "" {
			b += " upstream " + upstream + "\n"
			if secret != "" {
				b += " signing_secret " + secret + "\n"
			}
			return b + "}"
		}
		b += " destination " + dest + " {\n upstream " + upstream + "\n"
		if secret != "" {
			b += " signing_secret " + secret + "\n"
		}
		return b + " }\n}"
	}

	ctx := newConfig(t)
	mustProvision(t, ctx, dir, route("/usaepay", "", "http://127.0.0.1:9001", ""))
	_, err := provisionRoute(t, ctx, dir, route("/usaepay", "", "http://127.0.0.1:9002", ""))
	if !errors.Is(err, ErrDestinationConflict) {
		t.Fatalf("two shorthand routes of one source with different upstreams: %v", err)
	}
	for _, want := range []string{`destination "/usaepay"`, "different upstreams", "http://127.0.0.1:9001", "http://127.0.0.1:9002", "provider usaepay, auth none", "name each route's destination"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q: %v", want, err)
		}
	}
	// The same shorthand destination under another host name loads.
	mustProvision(t, ctx, dir, route("/usaepay", "", "http://127.0.0.1:9001", ""))
	// Named destinations of one source load side by side.
	mustProvision(t, ctx, dir, route("/usaepay", "account-a", "http://127.0.0.1:9003", ""))
	mustProvision(t, ctx, dir, route("/usaepay", "account-b", "http://127.0.0.1:9004", ""))
	// One name, two secrets.
	mustProvision(t, ctx, dir, route("/sublytics", "shop", "http://127.0.0.1:9005", "{env.DEST_TEST_SECRET}"))
	mustProvision(t, ctx, dir, route("/sublytics", "shop", "http://127.0.0.1:9005", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	_, err = provisionRoute(t, ctx, dir, route("/sublytics", "shop", "http://127.0.0.1:9005", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	if !errors.Is(err, ErrDestinationConflict) || !strings.Contains(err.Error(), "different signing secrets") || !strings.Contains(err.Error(), "another name") ||
		strings.Contains(err.Error(), "AAAAAAAA") || strings.Contains(err.Error(), "MfKQ9r8") {
		t.Fatalf("one name with two secrets: %v", err)
	}
	// A sync route's events are bound to its source too, but it claims no
	// destination: it may share its source with an async route (the
	// shorthand destination of that source replays its events, as before
	// destinations).
	mustProvision(t, ctx, dir, "webhook_gateway usaepay {\n source /sync\n auth none\n}")
	mustProvision(t, ctx, dir, route("/sync", "", "http://127.0.0.1:9006", ""))

	// Another config (a reload) may give the names other settings.
	mustProvision(t, newConfig(t), dir, route("/usaepay", "", "http://127.0.0.1:9002", ""))
}

// A route's destinations load from JSON as from the Caddyfile, and the
// events it stores are bound to its destination.
func TestDestinationsFromJSON(t *testing.T) {
	h := new(Handler)
	raw := `{"provider": "usaepay", "auth": [{"scheme": "none"}], "destinations": [{"name": "account-a",
		"upstreams": ["http://127.0.0.1:9001/hooks"], "workers": 2, "timeout": "5s", "retry": {"attempts": 3}}]}`
	if err := json.Unmarshal([]byte(raw), h); err != nil {
		t.Fatal(err)
	}
	h.StoreDir = t.TempDir()
	if err := h.Provision(newConfig(t)); err != nil {
		_ = h.Cleanup()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if h.Deliver != "async" || len(h.engines) != 1 || h.engines[0].Destination() != "account-a" ||
		len(h.gw.Destinations) != 1 || h.gw.Destinations[0].Name != "account-a" {
		t.Fatalf("deliver %s, %d engines, events bound to %+v", h.Deliver, len(h.engines), h.gw.Destinations)
	}
}

// A route fans out to several destinations, each with its filter and
// order; a sync route adds async destinations and keeps its forward's
// signing secret. The Caddyfile's expressions are read as the rest of the
// line, quotes kept, or one backquoted token.
func TestFanOutAndSyncDestinationsLoad(t *testing.T) {
	dir := t.TempDir()
	h, err := provisionRoute(t, newConfig(t), dir, "webhook_gateway usaepay {\n auth none\n"+
		" destination ledger {\n upstream http://127.0.0.1:2\n types transaction.* ach.*\n order_by subject\n }\n"+
		" destination crm {\n upstream http://127.0.0.1:3\n filter event.type == \"transaction.sale.success\" && event.subject != \"\"\n }\n"+
		" destination big {\n upstream http://127.0.0.1:4\n filter `double(event.data.object.amount_detail.amount) >= 100.0`\n order_by event.data.object.key\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if h.Deliver != "async" || len(h.engines) != 3 || len(h.gw.Destinations) != 3 {
		t.Fatalf("deliver %s, %d engines, %d destinations", h.Deliver, len(h.engines), len(h.gw.Destinations))
	}
	if got := h.Destinations[1].Filter; got != `event.type == "transaction.sale.success" && event.subject != ""` {
		t.Fatalf("filter read as %q", got)
	}
	if got := h.Destinations[2].Filter; got != `double(event.data.object.amount_detail.amount) >= 100.0` {
		t.Fatalf("backquoted filter read as %q", got)
	}
	d := h.gw.Destinations
	if d[0].OrderBy == nil || d[0].Filter == nil || d[1].OrderBy != nil || d[2].OrderBy.String() != "event.data.object.key" {
		t.Fatalf("compiled destinations %+v", d)
	}

	s, err := provisionRoute(t, newConfig(t), dir, "webhook_gateway usaepay {\n auth none\n deliver sync\n"+
		" signing_secret whsec_dGVzdC1zaWduaW5nLXNlY3JldC0zMmJ5dGVzLWxvbmc=\n timeout 5s\n"+
		" destination audit {\n upstream http://127.0.0.1:5\n }\n}")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Cleanup() })
	if s.Deliver != "sync" || len(s.engines) != 1 || len(s.gw.Destinations) != 1 || !s.gw.Headers.Signed() {
		t.Fatalf("sync route: deliver %s, %d engines, %d destinations, signed %v", s.Deliver, len(s.engines), len(s.gw.Destinations), s.gw.Headers.Signed())
	}
}
