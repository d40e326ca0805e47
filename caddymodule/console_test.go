package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func TestUnmarshalConsoleCaddyfile(t *testing.T) {
	var h ConsoleHandler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway_console {\n\trefresh 2s\n}")); err != nil {
		t.Fatal(err)
	}
	if time.Duration(h.Refresh) != 2*time.Second {
		t.Errorf("refresh %v", time.Duration(h.Refresh))
	}
	for _, bad := range []string{
		"webhook_gateway_console extra",
		"webhook_gateway_console {\n\trefresh soon\n}",
		"webhook_gateway_console {\n\trefresh\n}",
		"webhook_gateway_console {\n\tstore_dir /x\n}",
	} {
		var h ConsoleHandler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// The Caddy handler shows the stores of the loaded routes, with a selector
// when there are several, and each page and action works on the store
// selected.
func TestConsoleOnTheLiveStores(t *testing.T) {
	a := newAdminFixture(t)
	b := newAdminFixture(t)
	a.insert(t, "/usaepay", "in-a", "usaepay", "x", store.StatusDead, adminT0)
	b.insert(t, "/usaepay", "in-b", "usaepay", "x", store.StatusDead, adminT0)

	h := new(ConsoleHandler)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(target string) (int, string) {
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil), nil); err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}

	code, body := get("/console/")
	if code != http.StatusOK || !strings.Contains(body, `<select name="store">`) || !strings.Contains(body, a.dir) || !strings.Contains(body, b.dir) {
		t.Fatalf("overview with two stores: %d\n%s", code, body)
	}
	_, body = get("/console/events?store=" + url.QueryEscape(b.dir))
	if !strings.Contains(body, "id=in-b") || strings.Contains(body, "id=in-a") {
		t.Errorf("events of store b:\n%s", body)
	}

	form := url.Values{"store": {a.dir}, "source": {"/usaepay"}, "id": {"in-a"}}
	req := httptest.NewRequest(http.MethodPost, "/console/replay", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusSeeOther || len(a.backend.received()) != 1 || len(b.backend.received()) != 0 {
		t.Fatalf("replay in store a: %d, backends a %d b %d", rec.Code, len(a.backend.received()), len(b.backend.received()))
	}
	if loc := rec.Header().Get("Location"); !strings.Contains(loc, "store="+url.QueryEscape(a.dir)) {
		t.Errorf("the redirect forgets the store: %q", loc)
	}
}
