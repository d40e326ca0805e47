package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

func TestConformance(t *testing.T) { storetest.RunShared(t, openPostgres, openPeer) }

// optsOf remembers the options each store of the suite was opened with,
// so that a peer opens the same schema.
var optsOf sync.Map // store.Store -> postgres.Options

// openPostgres opens a store in a schema of its own; reopening opens the
// same schema again, as a restarted gateway would.
func openPostgres(t *testing.T, o storetest.Options) (store.Store, func() store.Store) {
	dsn := pgtest.DSN(t)
	opts := postgres.Options{DSN: dsn, Schema: pgtest.Schema(t, dsn), ReservationExpiry: o.ReservationExpiry, Now: o.Now}
	open := func() store.Store {
		t.Helper()
		return openWith(t, opts)
	}
	return open(), open
}

// openPeer opens another store on the schema of s, as another gateway
// sharing the database would.
func openPeer(t *testing.T, s store.Store) store.Store {
	t.Helper()
	opts, ok := optsOf.Load(s)
	if !ok {
		t.Fatal("a peer of a store the suite did not open")
	}
	return openWith(t, opts.(postgres.Options))
}

func openWith(t *testing.T, opts postgres.Options) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	optsOf.Store(store.Store(s), opts)
	t.Cleanup(func() { optsOf.Delete(store.Store(s)); _ = s.Close() })
	return s
}
