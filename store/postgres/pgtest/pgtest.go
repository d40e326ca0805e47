// Package pgtest gives tests a PostgreSQL schema of their own, so test runs
// (and the tests of one run) never see each other's tables.
//
// The server is named by the environment variable
// WEBHOOK_GATEWAY_TEST_POSTGRES (a DSN). When it is unset the loopback
// default, DefaultDSN, is tried, and a test finding no server there is
// skipped, saying so; when it is set, an unreachable server fails the test,
// so that CI cannot pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "WEBHOOK_GATEWAY_TEST_POSTGRES"

// DefaultDSN is the server tried when EnvDSN is unset: loopback, trust
// authentication, database test.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var probe struct {
	once sync.Once
	dsn  string
	err  error
	set  bool
}

// DSN returns the DSN of the test server, or skips (EnvDSN unset) or fails
// (EnvDSN set) t when the server does not answer.
// Tests that stop the database use a Server of their own instead: the
// shared server is never stopped.
func DSN(t testing.TB) string {
	t.Helper()
	probe.once.Do(func() {
		probe.dsn, probe.set = os.LookupEnv(EnvDSN)
		if !probe.set {
			probe.dsn = DefaultDSN
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, probe.dsn)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		probe.err = err
	})
	switch {
	case probe.err == nil:
		return probe.dsn
	case probe.set:
		t.Fatalf("PostgreSQL named by %s is unreachable: %v", EnvDSN, probe.err)
	default:
		t.Skipf("no PostgreSQL at %s (%v); set %s to a DSN to run the PostgreSQL tests", DefaultDSN, probe.err, EnvDSN)
	}
	return ""
}

// Schema returns the name of a new schema for t (created by the store that
// uses it) and drops the schema with everything in it when t ends.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "wg_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("dropping test schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Logf("dropping test schema %s: %v", name, err)
		}
	})
	return name
}
