package badger_test

import (
	"path/filepath"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t, openBadger) }

func openBadger(t *testing.T, o storetest.Options) (store.Store, func() store.Store) {
	dir := filepath.Join(t.TempDir(), "db")
	opts := badger.Options{ReservationExpiry: o.ReservationExpiry, Now: o.Now}
	open := func() store.Store {
		t.Helper()
		b, err := badger.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	return open(), open
}
