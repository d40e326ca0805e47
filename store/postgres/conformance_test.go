package postgres_test

import (
	"context"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t, openPostgres) }

// openPostgres opens a store in a schema of its own; reopening opens the
// same schema again, as a restarted gateway would.
func openPostgres(t *testing.T, o storetest.Options) (store.Store, func() store.Store) {
	dsn := pgtest.DSN(t)
	opts := postgres.Options{DSN: dsn, Schema: pgtest.Schema(t, dsn), ReservationExpiry: o.ReservationExpiry, Now: o.Now}
	open := func() store.Store {
		t.Helper()
		s, err := postgres.Open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return open(), open
}
