package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// stores shares one open store per engine module and store name. During a
// reload the old and the new config run side by side, and a second open of
// the same database would fail (Badger's directory lock) or double its
// resources; the pool hands the new config the store the old one holds and
// closes it when the last user lets go.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

// Destruct closes the store once no config uses it.
func (p pooledStore) Destruct() error { return p.Close() }

// openStore returns the shared store of engine (module is its module id)
// and the pool key to release.
func openStore(module string, engine StoreEngine, logger *zap.Logger) (store.Store, string, error) {
	key := module + " " + engine.StoreName()
	val, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := engine.OpenStore(logger.Named("store"))
		if err != nil {
			return nil, err
		}
		return pooledStore{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(pooledStore).Store, key, nil
}

func releaseStore(key string, logger *zap.Logger) {
	if _, err := stores.Delete(key); err != nil {
		logger.Error("closing store", zap.String("store", key), zap.Error(err))
	}
}
