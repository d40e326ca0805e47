package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileFull(t *testing.T) {
	input := `webhook_gateway usaepay {
		source /payments
		share_source
		type_prefix com.example.
		time_zone America/New_York
		max_body 2MB
		max_unverified 32MiB
		max_unverified_per_client 8MiB
		unverified_timeout 5s
		store_dir /var/lib/webhooks
		retention 240h
		auth basic usaepay {env.PASS}
		auth basic usaepay {env.PASS_NEXT}
		auth hmac {env.SIG} {env.SIG_OLD} {
			header X-Sig
			hash sha512
			encoding base64
			prefix sha512=
		}
		deliver async
		upstream http://127.0.0.1:9000 http://127.0.0.1:9001
		signing_secret {env.WHSEC}
		workers 8
		timeout 10s
		trust_traceparent
		trace_deliveries
		retry {
			attempts 5
			initial_delay 2s
			max_delay 1m
			max_age 24h
		}
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	want := Handler{
		Provider:      "usaepay",
		Source:        "/payments",
		ShareSource:   true,
		TypePrefix:    "com.example.",
		TimeZone:      "America/New_York",
		MaxBodySize:   2_000_000,
		MaxUnverified: 32 << 20,
		StoreDir:      "/var/lib/webhooks",
		Retention:     caddy.Duration(240 * time.Hour),
		Deliver:       "async",
		Upstreams:     []string{"http://127.0.0.1:9000", "http://127.0.0.1:9001"},
		SigningSecret: "{env.WHSEC}",
		Workers:       8,
		Timeout:       caddy.Duration(10 * time.Second),
		Retry: &RetryConfig{
			Attempts:     5,
			InitialDelay: caddy.Duration(2 * time.Second),
			MaxDelay:     caddy.Duration(time.Minute),
			MaxAge:       caddy.Duration(24 * time.Hour),
		},

		MaxUnverifiedPerClient: 8 << 20,
		UnverifiedTimeout:      caddy.Duration(5 * time.Second),
		TrustTraceparent:       true,
		TraceDeliveries:        true,
	}
	wantAuth := []string{
		`{"scheme": "basic", "credentials": [{"username": "usaepay", "password": "{env.PASS}"}, {"username": "usaepay", "password": "{env.PASS_NEXT}"}]}`,
		`{"scheme": "hmac", "secrets": ["{env.SIG}", "{env.SIG_OLD}"], "header": "X-Sig", "hash": "sha512", "encoding": "base64", "prefix": "sha512="}`,
	}
	checkAuthJSON(t, h.Auth, wantAuth...)
	h.Auth = nil
	if !reflect.DeepEqual(h, want) {
		got, _ := json.MarshalIndent(h, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("got\n%s\nwant\n%s", got, exp)
	}
}

func TestUnmarshalCaddyfileHeaderRotationMerges(t *testing.T) {
	input := `webhook_gateway {
		provider openloyalty
		auth header X-Token {env.A}
		auth header x-token {env.B} {env.C}
		auth path_secret {env.P}
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	checkAuthJSON(t, h.Auth,
		`{"scheme": "header", "header": "X-Token", "secrets": ["{env.A}", "{env.B}", "{env.C}"]}`,
		`{"scheme": "path_secret", "secrets": ["{env.P}"]}`,
	)
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"unknown subdirective":  "webhook_gateway {\n colour blue\n}",
		"bad deliver":           "webhook_gateway {\n deliver later\n}",
		"bad size":              "webhook_gateway {\n max_body lots\n}",
		"bad budget":            "webhook_gateway {\n max_unverified 0\n}",
		"bad client share":      "webhook_gateway {\n max_unverified_per_client lots\n}",
		"zero client share":     "webhook_gateway {\n max_unverified_per_client 0\n}",
		"size beyond int64":     "webhook_gateway {\n max_body 9EiB\n}",
		"bad unverified time":   "webhook_gateway {\n unverified_timeout soon\n}",
		"zero unverified time":  "webhook_gateway {\n unverified_timeout 0s\n}",
		"bad duration":          "webhook_gateway {\n retention forever\n}",
		"bad workers":           "webhook_gateway {\n workers -1\n}",
		"too many args":         `webhook_gateway usaepay extra`,
		"source two args":       "webhook_gateway {\n source /a /b\n}",
		"share_source arg":      "webhook_gateway {\n share_source yes\n}",
		"trust_traceparent arg": "webhook_gateway {\n trust_traceparent yes\n}",
		"trace_deliveries arg":  "webhook_gateway {\n trace_deliveries yes\n}",
		"upstream no args":      "webhook_gateway {\n upstream\n}",
		"retry bad option":      "webhook_gateway {\n retry {\n colour red\n }\n}",
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
			if err == nil {
				t.Fatalf("accepted %q", input)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not point at the Caddyfile line", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		h    Handler
		want string
	}{
		{"unknown provider", Handler{Provider: "stripe", Deliver: "sync"}, `provider: normalize: unknown provider "stripe" (want openloyalty, sublytics, usaepay or auto)`},
		{"sync with upstream", Handler{Provider: "auto", Deliver: "sync", Upstreams: []string{"http://x"}}, "upstreams"},
		{"sync with trace_deliveries", Handler{Provider: "auto", Deliver: "sync", TraceDeliveries: true}, "trace_deliveries traces async delivery"},
		{"async without upstream", Handler{Provider: "auto", Deliver: "async"}, "upstream"},
		{"relative upstream", Handler{Provider: "auto", Deliver: "async", Upstreams: []string{"127.0.0.1:9"}}, "absolute"},
		{"bad deliver", Handler{Provider: "auto", Deliver: "later"}, "deliver"},
		{"source with a space", Handler{Provider: "auto", Deliver: "sync", Source: "has space"}, "source"},
		{"budget below the body limit", Handler{Provider: "auto", Deliver: "sync", MaxUnverified: 1 << 20}, "max_unverified"},
		{"client share below the body limit", Handler{Provider: "auto", Deliver: "sync", MaxUnverifiedPerClient: 1 << 20}, "max_unverified_per_client (1048576 bytes) must be above the body limit"},
		{"client share above the default budget", Handler{Provider: "auto", Deliver: "sync", MaxUnverifiedPerClient: 65 << 20}, "max_unverified_per_client (68157440 bytes) must not be above max_unverified (67108864 bytes)"},
		{"client share above the budget", Handler{Provider: "auto", Deliver: "sync", MaxBodySize: 1 << 20, MaxUnverified: 4 << 20, MaxUnverifiedPerClient: 5 << 20}, "must not be above max_unverified"},
		{"negative client share", Handler{Provider: "auto", Deliver: "sync", MaxUnverifiedPerClient: -1}, "max_unverified_per_client"},
		{"negative unverified timeout", Handler{Provider: "auto", Deliver: "sync", UnverifiedTimeout: -1}, "unverified_timeout"},
		{"type_prefix with a space", Handler{Provider: "auto", Deliver: "sync", TypePrefix: "a b"}, "type_prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webhook_gateway") {
				t.Fatalf("Validate() = %v, want an error naming webhook_gateway and %q", err, tc.want)
			}
		})
	}
}

// A source or type prefix that Normalize refuses would answer every webhook
// with a 500; Provision must refuse it instead, before it opens a store.
func TestProvisionRefusesOptionsNormalizeRefuses(t *testing.T) {
	cases := map[string]string{
		"source":      `source "has space"`,
		"type_prefix": `type_prefix "a b"`,
	}
	for directive, line := range cases {
		t.Run(directive, func(t *testing.T) {
			var h Handler
			// A store of its own, should a regression get as far as opening one.
			input := "webhook_gateway usaepay {\n store_dir " + t.TempDir() + "\n auth none\n " + line + "\n}"
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil {
				_ = h.Cleanup()
				t.Fatalf("provisioned %q", input)
			}
			if !strings.Contains(err.Error(), "webhook_gateway: "+directive+":") {
				t.Fatalf("Provision() = %v, want an error naming %s", err, directive)
			}
		})
	}
}

// The Caddyfile adapter names each route by its directive's file and line,
// which load errors then carry.
func TestCaddyfileNamesTheRoute(t *testing.T) {
	input := `{
	auto_https off
}

http://127.0.0.1:8080, http://localhost:8080 {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			auth none
		}
		respond 200
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"route":"Caddyfile:7"`; !strings.Contains(string(out), want) {
		t.Fatalf("adapted config lacks %s:\n%s", want, out)
	}
}

func TestRouteError(t *testing.T) {
	h := &Handler{Provider: "usaepay", Route: "Caddyfile:7"}
	if got, want := h.routeError(errors.New("bad")).Error(), "configured at Caddyfile:7 (source /usaepay): bad"; got != want {
		t.Errorf("routeError = %q, want %q", got, want)
	}
	h = &Handler{Source: "/payments"}
	if got, want := h.routeError(errors.New("bad")).Error(), "route with source /payments: bad"; got != want {
		t.Errorf("routeError = %q, want %q", got, want)
	}
}
