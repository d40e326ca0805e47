package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestServerStopsAndStarts(t *testing.T) {
	s := NewServer(t)
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS kept (n int)")
		return err
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := ping(); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	s.Start()
	if err := ping(); err != nil {
		t.Fatal(err)
	}
}
