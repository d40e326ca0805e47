package caddymodule

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

func TestCaddyfilePostgresStore(t *testing.T) {
	cases := map[string]string{
		"store postgres {env.PG_DSN}": `{"dsn":"{env.PG_DSN}","engine":"postgres"}`,
		"store postgres {\n dsn postgres://gw@db/gw\n schema gateway\n max_conns 8\n reservation_expiry 90s\n }": `{"dsn":"postgres://gw@db/gw","engine":"postgres","max_conns":8,"reservation_expiry":90000000000,"schema":"gateway"}`,
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
	for _, line := range []string{"store postgres a b", "store postgres {\n max_conns none\n }", "store postgres {\n colour red\n }"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("webhook_gateway {\n " + line + "\n}")); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
}

// The DSN's placeholders are expanded; the store's name, which the admin
// API and the CLI show, leaves the password out.
func TestPostgresStoreDSN(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "pg")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PG_HOST", "db.internal")
	p := &PostgresStore{DSN: "postgres://gw:{file." + secret + "}@{env.PG_HOST}:6432/events", Schema: "gw"}
	if err := p.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.dsn, ":s3cret@db.internal:6432/") {
		t.Fatalf("expanded DSN %q", p.dsn)
	}
	if got := p.StoreName(); got != "postgres://gw@db.internal:6432/events#gw" {
		t.Fatalf("store name %q", got)
	}
	for _, bad := range []*PostgresStore{{}, {DSN: "{env.NO_SUCH_VARIABLE_HERE}"}, {DSN: "postgres://gw:pw@db/x?sslmode=sometimes"}} {
		err := bad.Provision(caddyContext(t))
		if err == nil {
			t.Fatalf("%q accepted", bad.DSN)
		}
		if strings.Contains(err.Error(), "pw") {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}

// A route on the postgres store opens it, and a second route on the same
// database shares it.
func TestPostgresStoreModule(t *testing.T) {
	dsn := pgtest.DSN(t)
	raw := `{"engine":"postgres","dsn":` + string(mustMarshal(t, dsn)) + `,"schema":` + string(mustMarshal(t, pgtest.Schema(t, dsn))) + `}`
	open := []json.RawMessage{json.RawMessage(`{"scheme":"none"}`)}
	a := &Handler{StoreRaw: []byte(raw), Auth: open}
	if err := provisionHandler(t, a); err != nil {
		t.Fatal(err)
	}
	b := &Handler{StoreRaw: []byte(raw), Auth: open, Provider: "sublytics"}
	if err := provisionHandler(t, b); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.db.(*postgres.Store); !ok || a.db != b.db {
		t.Fatalf("stores %T %p and %T %p", a.db, a.db, b.db, b.db)
	}
}

func caddyContext(t *testing.T) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}
