package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// storesNamespace is the Caddy module namespace of store engines.
const storesNamespace = "webhook_gateway.stores"

// StoreEngine is implemented by the modules of the webhook_gateway.stores
// namespace: a store engine the gateway's routes, admin API and CLI use
// through store.Store.
type StoreEngine interface {
	// StoreName names the database the module opens, once provisioned:
	// routes whose stores have the same module and name share one open
	// store across config reloads, and the admin API and the CLI select a
	// store by it.
	StoreName() string
	// OpenStore opens the database. It is called once per name while any
	// loaded config uses it; the store is closed when the last one is
	// unloaded.
	OpenStore(logger *zap.Logger) (store.Store, error)
}

// loadStore provisions the route's store engine: the "store" module when
// one is configured, otherwise the Badger store in store_dir (the
// shorthand, and the default).
func (h *Handler) loadStore(ctx caddy.Context) (StoreEngine, string, error) {
	if h.StoreRaw == nil {
		b := &BadgerStore{Dir: h.StoreDir}
		if err := b.Provision(ctx); err != nil {
			return nil, "", err
		}
		return b, b.CaddyModule().String(), nil
	}
	if h.StoreDir != "" {
		return nil, "", errors.New("store_dir is the shorthand for a badger store; set store_dir or store, not both")
	}
	mod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return nil, "", fmt.Errorf("loading store module: %w", err)
	}
	engine, ok := mod.(StoreEngine)
	if !ok {
		return nil, "", fmt.Errorf("module %T is not a store engine", mod)
	}
	return engine, mod.(caddy.Module).CaddyModule().String(), nil
}

// storeModuleJSON reads "store <engine> ..." from d, at "store", into the
// JSON of the handler's "store" field.
func storeModuleJSON(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	mod, err := caddyfile.UnmarshalModule(d, storesNamespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(mod, "engine", name, nil), nil
}
