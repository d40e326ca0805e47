package caddymodule

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestCaddyfileStoreModule(t *testing.T) {
	cases := map[string]string{
		"store badger /var/lib/a":             `{"dir":"/var/lib/a","engine":"badger"}`,
		"store badger {\n dir /var/lib/b\n }": `{"dir":"/var/lib/b","engine":"badger"}`,
		"store badger":                        `{"engine":"badger"}`,
		"store badger {\n min_free_space 1GiB\n space_reserve off\n }": `{"engine":"badger","min_free_space":1073741824,"space_reserve":-1}`,
		"store badger /d {\n gc_interval 90s\n }":                      `{"dir":"/d","engine":"badger","gc_interval":90000000000}`,
	}
	for line, want := range cases {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway {\n " + line + "\n}")); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if string(h.StoreRaw) != want {
			t.Errorf("%q: store = %s, want %s", line, h.StoreRaw, want)
		}
	}
	for _, line := range []string{"store", "store nosuch", "store badger /a /b", "store badger {\n colour red\n }", "store badger {\n min_free_space lots\n }", "store badger {\n gc_interval 10ms\n }", "store badger {\n gc_interval -1s\n }", "store badger {\n gc_interval\n }"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway {\n " + line + "\n}")); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
}

func provisionHandler(t *testing.T, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if h.Provider == "" {
		h.Provider = "usaepay"
	}
	if h.Auth == nil {
		h.Auth = []json.RawMessage{json.RawMessage(`{"scheme":"none"}`)}
	}
	err := h.Provision(ctx)
	if err == nil {
		t.Cleanup(func() { _ = h.Cleanup() })
	}
	return err
}

// A route may name its store by module; one with the same engine and
// directory as a store_dir route shares that route's store.
func TestStoreModuleSharesTheStore(t *testing.T) {
	dir := t.TempDir()
	byModule := &Handler{StoreRaw: json.RawMessage(`{"engine":"badger","dir":` + string(mustMarshal(t, dir)) + `}`)}
	if err := provisionHandler(t, byModule); err != nil {
		t.Fatal(err)
	}
	byDir := &Handler{StoreDir: dir}
	if err := provisionHandler(t, byDir); err != nil {
		t.Fatal(err)
	}
	if byModule.db != byDir.db {
		t.Fatal("two routes on one directory opened two stores")
	}
	if byModule.storeName != dir {
		t.Fatalf("store name %q, want %q", byModule.storeName, dir)
	}
	if _, ls, err := live.store(dir); err != nil || ls.db != byDir.db {
		t.Fatalf("the admin registry does not know the store by its name: %v", err)
	}
}

func TestStoreDirPlaceholders(t *testing.T) {
	base := t.TempDir()
	t.Setenv("WEBHOOK_STATE", base)
	h := &Handler{StoreDir: "{env.WEBHOOK_STATE}/db"}
	if err := provisionHandler(t, h); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "db"); h.storeName != want {
		t.Fatalf("store in %q, want %q", h.storeName, want)
	}
	for name, bad := range map[string]*Handler{
		"unset variable": {StoreDir: "{env.WEBHOOK_STATE_UNSET}/db"},
		"both forms":     {StoreDir: base, StoreRaw: json.RawMessage(`{"engine":"badger"}`)},
		"unknown engine": {StoreRaw: json.RawMessage(`{"engine":"nosuch"}`)},
		"gc_interval":    {StoreRaw: json.RawMessage(`{"engine":"badger","dir":"` + base + `","gc_interval":"100ms"}`)},
	} {
		err := provisionHandler(t, bad)
		if err == nil || !strings.Contains(err.Error(), "webhook_gateway: store") {
			t.Errorf("%s: Provision() = %v", name, err)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
