package caddymodule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// On a route that dedups by content, a check of a signed timestamp sets the
// least dedup window: the default is raised to the tolerance, a shorter
// explicit window is refused, and a signed request id lifts the rule.
func TestDedupWindowCoversTheTimestampTolerance(t *testing.T) {
	t.Setenv("ID_TEST_SECRET", "whsec_loyalty")
	t.Setenv("ID_TEST_SW", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	dir := t.TempDir()
	hosted := func(opts, signed string) string {
		return "webhook_gateway openloyalty {\n" + opts + "\n auth hmac {env.ID_TEST_SECRET} {\n header X-Webhook-Signature\n timestamp_header X-Webhook-Timestamp\n signed_content " + signed + "\n }\n}"
	}
	cases := []struct {
		name   string
		block  string
		window time.Duration
		signed bool
		err    string
	}{
		{"default raised", hosted("", "{timestamp}.{body}"), 5 * time.Minute, false, ""},
		{"longer kept", hosted("dedup_window 10m", "{timestamp}.{body}"), 10 * time.Minute, false, ""},
		{"shorter refused", hosted("dedup_window 10s", "{timestamp}.{body}"), 0, false, "dedup_window 10s: shorter than the timestamp tolerance of the route's auth (5m0s)"},
		{"off refused", hosted("dedup_window off", "{timestamp}.{body}"), 0, false, "dedup_window off: shorter"},
		{"unsigned id header", hosted("dedup_window 10s\n id_header X-Webhook-Request-Id", "{timestamp}.{body}"), 0, false, "sign the request id"},
		{"signed id header", hosted("dedup_window 10s\n id_header X-Webhook-Request-Id", "{header.X-Webhook-Request-Id}.{timestamp}.{body}"), 10 * time.Second, true, ""},
		{"id signed but not the id header", hosted("dedup_window 10s", "{header.X-Webhook-Request-Id}.{timestamp}.{body}"), 0, false, "shorter"},
		{"auto route", strings.Replace(hosted("", "{timestamp}.{body}"), "openloyalty", "auto", 1), 5 * time.Minute, false, ""},
		{"standard webhooks tolerance", "webhook_gateway openloyalty {\n auth standard_webhooks {env.ID_TEST_SW} {\n tolerance 10m\n }\n}", 10 * time.Minute, false, ""},
		{"no timestamp", "webhook_gateway openloyalty {\n dedup_window 10s\n auth hmac {env.ID_TEST_SECRET}\n}", 10 * time.Second, false, ""},
		{"provider with event ids", "webhook_gateway usaepay {\n dedup_window off\n auth standard_webhooks {env.ID_TEST_SW}\n}", 0, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := provisionRoute(t, newConfig(t), dir, c.block)
			if c.err != "" {
				if !errors.Is(err, ErrDedupWindowTooShort) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Provision() = %v, want ErrDedupWindowTooShort saying %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.gw.DedupWindow != c.window || h.gw.RequestIDSigned != c.signed {
				t.Fatalf("dedup window %s, request id signed %v; want %s, %v", h.gw.DedupWindow, h.gw.RequestIDSigned, c.window, c.signed)
			}
		})
	}
}
