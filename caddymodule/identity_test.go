package caddymodule

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// newConfig is the context of one config load, as Caddy makes one per load.
func newConfig(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// provisionRoute parses a webhook_gateway Caddyfile block and provisions
// it in ctx with a store in dir; a provisioned route is cleaned up at the
// end of the test.
func provisionRoute(t *testing.T, ctx caddy.Context, dir, block string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	if h.StoreDir == "" {
		h.StoreDir = dir
	}
	if err := h.Provision(ctx); err != nil {
		_ = h.Cleanup() // what Caddy does when Provision fails
		return nil, err
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, nil
}

func mustProvision(t *testing.T, ctx caddy.Context, dir, block string) *Handler {
	t.Helper()
	h, err := provisionRoute(t, ctx, dir, block)
	if err != nil {
		t.Fatalf("%s: %v", block, err)
	}
	return h
}

// An auto route writes, and its delivery engine serves, its own source
// only; the detected provider stays in the event's provider attribute.
func TestAutoRouteHasASourceOfItsOwn(t *testing.T) {
	t.Setenv("ID_TEST_TOKEN", "token")
	dir := t.TempDir()
	ctx := newConfig(t)
	auto := mustProvision(t, ctx, dir, "webhook_gateway {\n auth header X-Token {env.ID_TEST_TOKEN}\n}")
	if got := auto.sources(); len(got) != 1 || got[0] != normalize.AutoSource {
		t.Fatalf("auto route sources = %v, want [%s]", got, normalize.AutoSource)
	}
	if auto.gw.Normalize.Source != normalize.AutoSource {
		t.Fatalf("auto route normalizes into %q", auto.gw.Normalize.Source)
	}
	named := mustProvision(t, newConfig(t), dir, "webhook_gateway {\n source /loyalty\n auth header X-Token {env.ID_TEST_TOKEN}\n}")
	if got := named.sources(); len(got) != 1 || got[0] != "/loyalty" {
		t.Fatalf("auto route with a source serves %v", got)
	}
}

// Routes of one config writing one source must have the same auth, unless
// all of them say share_source; configs loaded side by side (a reload) do
// not constrain each other.
func TestRoutesWritingOneSourceNeedTheSameAuth(t *testing.T) {
	t.Setenv("ID_TEST_KEY", "payment-key")
	t.Setenv("ID_TEST_KEY_AGAIN", "payment-key")
	t.Setenv("ID_TEST_OTHER_KEY", "another-key")
	t.Setenv("ID_TEST_TOKEN", "loyalty-token")
	dir := t.TempDir()
	payment := "webhook_gateway usaepay {\n auth basic user {env.ID_TEST_KEY}\n auth hmac {env.ID_TEST_KEY}\n}"

	t.Run("different auth is refused", func(t *testing.T) {
		ctx := newConfig(t)
		mustProvision(t, ctx, dir, payment)
		_, err := provisionRoute(t, ctx, dir, "webhook_gateway {\n source /usaepay\n auth header X-Token {env.ID_TEST_TOKEN}\n}")
		if !errors.Is(err, ErrSharedSource) {
			t.Fatalf("Provision() = %v, want ErrSharedSource", err)
		}
		for _, want := range []string{`source "/usaepay"`, "provider auto, auth header", "provider usaepay, auth basic + hmac", "share_source"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), "loyalty-token") || strings.Contains(err.Error(), "payment-key") {
			t.Errorf("error shows a secret: %v", err)
		}
		// Another key for the same scheme is other auth too, and so is a
		// store of its own.
		_, err = provisionRoute(t, ctx, t.TempDir(), "webhook_gateway usaepay {\n auth basic user {env.ID_TEST_KEY}\n auth hmac {env.ID_TEST_OTHER_KEY}\n}")
		if !errors.Is(err, ErrSharedSource) {
			t.Fatalf("another hmac key, another store: Provision() = %v, want ErrSharedSource", err)
		}
	})

	t.Run("share_source on one route only is refused", func(t *testing.T) {
		ctx := newConfig(t)
		mustProvision(t, ctx, dir, payment)
		_, err := provisionRoute(t, ctx, dir, "webhook_gateway {\n source /usaepay\n share_source\n auth header X-Token {env.ID_TEST_TOKEN}\n}")
		if !errors.Is(err, ErrSharedSource) {
			t.Fatalf("Provision() = %v, want ErrSharedSource", err)
		}
	})

	t.Run("share_source on both loads", func(t *testing.T) {
		ctx := newConfig(t)
		mustProvision(t, ctx, dir, strings.Replace(payment, "{\n", "{\n share_source\n", 1))
		mustProvision(t, ctx, dir, "webhook_gateway {\n source /usaepay\n share_source\n auth header X-Token {env.ID_TEST_TOKEN}\n}")
	})

	t.Run("the same auth loads", func(t *testing.T) {
		ctx := newConfig(t)
		mustProvision(t, ctx, dir, payment)
		// The same route under another host name, its checks in another
		// order and its key through another placeholder of equal value.
		mustProvision(t, ctx, dir, "webhook_gateway usaepay {\n auth hmac {env.ID_TEST_KEY_AGAIN}\n auth basic user {env.ID_TEST_KEY}\n}")
	})

	t.Run("another config is not constrained", func(t *testing.T) {
		old := newConfig(t)
		first := mustProvision(t, old, dir, payment)
		// A reload that changes the route's key: both configs run for a
		// moment.
		mustProvision(t, newConfig(t), dir, "webhook_gateway usaepay {\n auth hmac {env.ID_TEST_OTHER_KEY}\n}")
		// Once the old config is cleaned up, its claims are gone.
		_ = first.Cleanup()
		configs.Lock()
		_, kept := configs.byKey[old.GetMetricsRegistry()]
		configs.Unlock()
		if kept {
			t.Error("the claims of a cleaned-up config are kept")
		}
	})

	t.Run("a refused route releases its claim", func(t *testing.T) {
		ctx := newConfig(t)
		mustProvision(t, ctx, dir, payment)
		// Refused after its claim was made (its store cannot be opened),
		// a route must not keep the source from a route with other auth.
		if _, err := provisionRoute(t, ctx, dir, "webhook_gateway usaepay {\n source /x\n store_dir /proc/webhook_gateway_store\n auth none\n}"); err == nil {
			t.Fatal("a store in /proc loaded")
		}
		mustProvision(t, ctx, dir, "webhook_gateway usaepay {\n source /x\n auth hmac {env.ID_TEST_KEY}\n}")
	})
}
