package caddymodule

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
)

func init() {
	caddy.RegisterModule(PostgresStore{})
}

// Interface guards.
var (
	_ StoreEngine           = (*PostgresStore)(nil)
	_ caddy.Provisioner     = (*PostgresStore)(nil)
	_ caddyfile.Unmarshaler = (*PostgresStore)(nil)
)

// postgresOpenTimeout bounds connecting and migrating when a config loads.
const postgresOpenTimeout = time.Minute

// PostgresStore keeps the events in PostgreSQL, so that several gateways
// behind one load balancer share them: any instance acknowledges, delivers,
// deduplicates and answers the admin API for all of them. Its name in the
// admin API and the CLI is the DSN without its password.
type PostgresStore struct {
	// DSN is the PostgreSQL connection string, a URL
	// (postgres://user@host:5432/db?sslmode=verify-full) or libpq
	// key=value pairs. Placeholders are expanded when the config loads, so
	// the password can stay out of the config: an {env.*} or {file.*}
	// placeholder such as "postgres://gw:{file./run/secrets/pg}@db/gw", or
	// libpq's PGPASSWORD or PGPASSFILE, which pgx reads too. The password
	// is never logged nor shown by the gateway's admin API. Required.
	DSN string `json:"dsn,omitempty"`

	// Schema holds the gateway's tables; it is created if absent.
	// Placeholders are expanded when the config loads. Default: the
	// connection's default schema (normally public).
	Schema string `json:"schema,omitempty"`

	// MaxConns bounds this instance's connection pool. Default: the larger
	// of 4 and the number of CPUs.
	MaxConns int32 `json:"max_conns,omitempty"`

	// ReservationExpiry is how long a sync delivery's reservation blocks
	// the event's retries if its instance dies before the backend answers.
	// Default: 2m.
	ReservationExpiry caddy.Duration `json:"reservation_expiry,omitempty"`

	dsn, schema string // expanded
	name        string // without the password
}

// CaddyModule returns the Caddy module information.
func (PostgresStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storesNamespace + ".postgres",
		New: func() caddy.Module { return new(PostgresStore) },
	}
}

// Provision expands the DSN and checks that it parses.
func (p *PostgresStore) Provision(caddy.Context) error {
	if p.DSN == "" {
		return fmt.Errorf("postgres store: dsn is required")
	}
	repl := caddy.NewReplacer()
	dsn, err := repl.ReplaceOrErr(p.DSN, true, true)
	if err != nil {
		// The error names the placeholder, not the expanded value.
		return fmt.Errorf("postgres store dsn: %w", err)
	}
	schema, err := repl.ReplaceOrErr(p.Schema, true, true)
	if err != nil {
		return fmt.Errorf("postgres store schema %q: %w", p.Schema, err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors leave the password out.
		return fmt.Errorf("postgres store dsn: %w", err)
	}
	if p.ReservationExpiry < 0 || p.MaxConns < 0 {
		return fmt.Errorf("postgres store: reservation_expiry and max_conns must not be negative")
	}
	p.dsn, p.schema, p.name = dsn, schema, redactedName(cfg, schema)
	return nil
}

// redactedName names the database a DSN opens without its password:
// postgres://user@host:port/database, then #schema when one is set.
func redactedName(cfg *pgconn.Config, schema string) string {
	name := "postgres://" + cfg.User + "@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
	if schema != "" {
		name += "#" + schema
	}
	return name
}

// StoreName implements StoreEngine.
func (p *PostgresStore) StoreName() string { return p.name }

// OpenStore implements StoreEngine.
func (p *PostgresStore) OpenStore(logger *zap.Logger) (store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), postgresOpenTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, postgres.Options{
		DSN:               p.dsn,
		Schema:            p.schema,
		MaxConns:          p.MaxConns,
		ReservationExpiry: time.Duration(p.ReservationExpiry),
		Logger:            logger,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return db, nil
}

// UnmarshalCaddyfile sets up the store from the tokens after
// "store postgres":
//
//	store postgres [<dsn>] {
//	    dsn                <dsn>
//	    schema             <name>
//	    max_conns          <n>
//	    reservation_expiry <duration>
//	}
func (p *PostgresStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // engine name
	if d.NextArg() {
		p.DSN = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "dsn":
			if err := oneArg(d, &p.DSN); err != nil {
				return err
			}
		case "schema":
			if err := oneArg(d, &p.Schema); err != nil {
				return err
			}
		case "max_conns":
			var raw string
			if err := oneArg(d, &raw); err != nil {
				return err
			}
			n, err := strconv.ParseInt(raw, 10, 32)
			if err != nil || n <= 0 {
				return d.Errf("max_conns: want a positive number, got %q", raw)
			}
			p.MaxConns = int32(n)
		case "reservation_expiry":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			p.ReservationExpiry = dur
		default:
			return d.Errf("unknown postgres store subdirective %q", d.Val())
		}
	}
	return nil
}
