package caddymodule

import (
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

func init() {
	caddy.RegisterModule(BadgerStore{})
}

// Interface guards.
var (
	_ StoreEngine           = (*BadgerStore)(nil)
	_ caddy.Provisioner     = (*BadgerStore)(nil)
	_ caddyfile.Unmarshaler = (*BadgerStore)(nil)
)

// BadgerStore is the embedded Badger store, the default engine. Its name
// in the admin API and the CLI is its absolute directory.
type BadgerStore struct {
	// Dir is the Badger directory. Routes naming the same directory share
	// one database. Placeholders such as {env.STATE_DIRECTORY} are
	// expanded when the config loads; an unknown one is an error. A
	// relative path is resolved against Caddy's working directory.
	// Default: "webhook_gateway" under Caddy's data directory.
	Dir string `json:"dir,omitempty"`

	// MinFreeSpace is the free disk space, in bytes, below which new
	// webhooks are answered 503 while stored events are still delivered,
	// so that the disk never runs out mid-write. Default 256 MiB; -1
	// disables the check.
	MinFreeSpace int64 `json:"min_free_space,omitempty"`

	// SpaceReserve is the size, in bytes, of a file the store allocates
	// in its directory while space is plentiful and deletes when the disk
	// is nearly full or the store starts on a full disk, to give the
	// database room to finish its writes. Default 64 MiB; -1: none.
	SpaceReserve int64 `json:"space_reserve,omitempty"`

	// GCInterval is how often the store garbage-collects Badger's value
	// log and sweeps what nothing refers to any more: the payloads of
	// expired events, orphaned batch bodies, expired leases. A store left
	// idle after such deletions also compacts, so that the collection
	// finds their space. A shorter interval gives disk space back sooner
	// at the cost of more background reads. Default 10m; at least 1s.
	GCInterval caddy.Duration `json:"gc_interval,omitempty"`

	abs string
}

// minGCInterval keeps gc_interval from turning the collection into a busy
// loop: each run reads the value log's discard statistics and walks the
// payload index.
const minGCInterval = time.Second

// CaddyModule returns the Caddy module information.
func (BadgerStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storesNamespace + ".badger",
		New: func() caddy.Module { return new(BadgerStore) },
	}
}

// Provision resolves the directory and checks the options.
func (b *BadgerStore) Provision(caddy.Context) error {
	if b.GCInterval != 0 && time.Duration(b.GCInterval) < minGCInterval {
		return fmt.Errorf("badger store gc_interval %s: want at least %s", time.Duration(b.GCInterval), minGCInterval)
	}
	dir := b.Dir
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "webhook_gateway")
	}
	dir, err := caddy.NewReplacer().ReplaceOrErr(dir, true, true)
	if err != nil {
		return fmt.Errorf("badger store dir %q: %w", b.Dir, err)
	}
	if dir == "" {
		return fmt.Errorf("badger store dir %q is empty once expanded", b.Dir)
	}
	if b.abs, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("badger store dir %q: %w", dir, err)
	}
	return nil
}

// StoreName implements StoreEngine: the absolute directory.
func (b *BadgerStore) StoreName() string { return b.abs }

// OpenStore implements StoreEngine.
func (b *BadgerStore) OpenStore(logger *zap.Logger) (store.Store, error) {
	return badger.Open(b.abs, badger.Options{Logger: logger, MinFreeSpace: b.MinFreeSpace, SpaceReserve: b.SpaceReserve, GCInterval: time.Duration(b.GCInterval)})
}

// UnmarshalCaddyfile sets up the store from the tokens after
// "store badger":
//
//	store badger [<dir>] {
//	    dir            <dir>
//	    min_free_space <size>|off
//	    space_reserve  <size>|off
//	    gc_interval    <duration>
//	}
func (b *BadgerStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // engine name
	if d.NextArg() {
		b.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "dir":
			if err := oneArg(d, &b.Dir); err != nil {
				return err
			}
		case "min_free_space", "space_reserve":
			field := &b.MinFreeSpace
			if d.Val() == "space_reserve" {
				field = &b.SpaceReserve
			}
			if err := sizeOrOffArg(d, field); err != nil {
				return err
			}
		case "gc_interval":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			if time.Duration(dur) < minGCInterval {
				return d.Errf("gc_interval: %s is below the minimum of %s", time.Duration(dur), minGCInterval)
			}
			b.GCInterval = dur
		default:
			return d.Errf("unknown badger store subdirective %q", d.Val())
		}
	}
	return nil
}

// sizeOrOffArg reads a size ("64MiB") or "off" (-1) into field.
func sizeOrOffArg(d *caddyfile.Dispenser, field *int64) error {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return err
	}
	if raw == "off" {
		*field = -1
		return nil
	}
	size, err := humanize.ParseBytes(raw)
	if err != nil || size == 0 || size > math.MaxInt64 {
		return d.Errf("%s: invalid size %q (want a size such as 256MiB, or off)", name, raw)
	}
	*field = int64(size)
	return nil
}
