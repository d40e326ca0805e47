package caddymodule

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// stores shares one open Badger database per directory. During a reload the
// old and the new config run side by side, and a second badger.Open of the
// same directory would fail on its lock; the pool hands the new config the
// database the old one holds and closes it when the last user lets go.
var stores = caddy.NewUsagePool()

type pooledStore struct{ *store.Badger }

// Destruct closes the database once no config uses it.
func (p pooledStore) Destruct() error { return p.Close() }

// openStore returns the shared store for dir and the pool key to release.
func openStore(dir string, logger *zap.Logger) (*store.Badger, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%q: %w", dir, err)
	}
	val, _, err := stores.LoadOrNew(abs, func() (caddy.Destructor, error) {
		db, err := store.Open(abs, store.Options{Logger: logger.Named("store")})
		if err != nil {
			return nil, err
		}
		return pooledStore{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledStore).Badger, abs, nil
}

func releaseStore(key string, logger *zap.Logger) {
	if _, err := stores.Delete(key); err != nil {
		logger.Error("closing store", zap.String("dir", key), zap.Error(err))
	}
}
