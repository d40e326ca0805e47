package caddymodule

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/internal/countcache"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// live is what the admin API and the metrics read: the stores and delivery
// engines of the configs currently loaded. The admin module is provisioned
// before the HTTP app (and so before any Handler), and Caddy gives modules no
// other way to find each other across apps, hence a package-level registry
// that Handlers join at Provision and leave at Cleanup.
var live = newRegistry()

// registry tracks live stores by directory and live routes by source.
// During a reload the old and the new config are both registered for a
// moment: stores are reference-counted (the pool hands both configs the
// same store.Store), and a source may have several routes, the newest last.
// Stores are known by name (StoreEngine.StoreName; a Badger store's is its
// absolute directory).
type registry struct {
	mu     sync.Mutex
	stores map[string]*liveStore
	routes map[string][]*liveRoute
}

type liveStore struct {
	db     store.Store
	refs   int
	counts *countcache.Cache[map[store.Status]int]
}

// liveRoute is one Handler's claim on a source.
type liveRoute struct {
	dir    string
	mode   handlers.Mode
	engine *delivery.Engine // nil for a sync route
}

func newRegistry() *registry {
	return &registry{stores: map[string]*liveStore{}, routes: map[string][]*liveRoute{}}
}

// add registers a Handler's store and, for each of its sources, its route;
// the returned function undoes exactly this registration.
func (r *registry) add(dir string, db store.Store, sources []string, mode handlers.Mode, engine *delivery.Engine) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := r.stores[dir]
	if ls == nil {
		ls = &liveStore{db: db, counts: newCountsCache(db)}
		r.stores[dir] = ls
	}
	ls.refs++
	route := &liveRoute{dir: dir, mode: mode, engine: engine}
	for _, s := range sources {
		r.routes[s] = append(r.routes[s], route)
	}
	var once sync.Once
	return func() {
		once.Do(func() { r.remove(dir, sources, route) })
	}
}

func (r *registry) remove(dir string, sources []string, route *liveRoute) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range sources {
		rs := slices.DeleteFunc(r.routes[s], func(x *liveRoute) bool { return x == route })
		if len(rs) == 0 {
			delete(r.routes, s)
		} else {
			r.routes[s] = rs
		}
	}
	if ls := r.stores[dir]; ls != nil {
		if ls.refs--; ls.refs <= 0 {
			delete(r.stores, dir)
		}
	}
}

// errNoStore and the other lookup errors are matched by the admin API to
// choose an HTTP status.
var (
	errNoStore        = errors.New("no webhook_gateway store is loaded")
	errUnknownStore   = errors.New("unknown store")
	errAmbiguousStore = errors.New("several stores are loaded")
	errSyncRoute      = errors.New("replay needs an async route with upstreams")
)

// store returns the live store named dir, or the only live store when dir
// is empty. A name no store has is tried as a relative Badger directory,
// resolved like store_dir is, against Caddy's working directory.
func (r *registry) store(dir string) (string, *liveStore, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dir == "" {
		switch len(r.stores) {
		case 0:
			return "", nil, errNoStore
		case 1:
			for d, ls := range r.stores {
				return d, ls, nil
			}
		}
		return "", nil, fmt.Errorf("%w (%s): choose one with store=<dir>", errAmbiguousStore, strings.Join(r.dirsLocked(), ", "))
	}
	if ls := r.stores[dir]; ls != nil {
		return dir, ls, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, fmt.Errorf("store %q: %w", dir, err)
	}
	ls := r.stores[abs]
	if ls == nil {
		if len(r.stores) == 0 {
			return "", nil, errNoStore
		}
		return "", nil, fmt.Errorf("%w %q; loaded stores: %s", errUnknownStore, dir, strings.Join(r.dirsLocked(), ", "))
	}
	return abs, ls, nil
}

// target is the live store in dir (the only one when dir is empty) as the
// operations of package ops see it.
func (r *registry) target(dir string) (ops.Target, error) {
	d, ls, err := r.store(dir)
	switch {
	case errors.Is(err, errNoStore):
		return ops.Target{}, ops.Mark(ops.ErrNotFound, fmt.Errorf("%w: no webhook_gateway handler in the running config", err))
	case err != nil:
		return ops.Target{}, ops.Mark(ops.ErrInvalid, err)
	}
	return ops.Target{
		Name:    d,
		Store:   ls.db,
		Sources: r.sources(d),
		Replayer: func(source string) (ops.Replayer, error) {
			e, err := r.engine(d, source)
			if err != nil {
				return nil, err // not a nil *Engine in a non-nil interface
			}
			return e, nil
		},
	}, nil
}

// sources lists the sources of the live routes on the store in dir, sorted.
func (r *registry) sources(dir string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s, rs := range r.routes {
		if slices.ContainsFunc(rs, func(x *liveRoute) bool { return x.dir == dir }) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// dirs lists the live store directories, sorted.
func (r *registry) dirs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dirsLocked()
}

func (r *registry) dirsLocked() []string {
	out := make([]string, 0, len(r.stores))
	for d := range r.stores {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// storesByName returns every live store by name, for the metrics.
func (r *registry) storesByName() map[string]*liveStore {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*liveStore, len(r.stores))
	for name, ls := range r.stores {
		out[name] = ls
	}
	return out
}

// liveStores returns every live store, for the metrics.
func (r *registry) liveStores() []*liveStore {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*liveStore, 0, len(r.stores))
	for _, ls := range r.stores {
		out = append(out, ls)
	}
	return out
}

// engine returns the engine that replays events of source stored in dir:
// the newest async route's, so after a reload replays use the new config's
// upstreams and signing secret even while the old config drains.
func (r *registry) engine(dir, source string) (*delivery.Engine, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.routes[source]
	sync := false
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].dir != dir {
			continue
		}
		if rs[i].engine != nil {
			return rs[i].engine, nil
		}
		sync = true
	}
	if sync {
		return nil, fmt.Errorf("source %s is delivered synchronously (deliver sync): %w", source, errSyncRoute)
	}
	return nil, fmt.Errorf("no loaded route serves source %s with this store: %w", source, errSyncRoute)
}

// register adds the provisioned Handler to the live registry and schedules
// its removal at Cleanup. It must run after the store is opened and the
// engine started, and its removal before the store is released, so nothing
// reads a closed store through the registry.
func (h *Handler) register() {
	remove := live.add(h.storeName, h.db, h.sources(), h.gw.Mode, h.engine)
	h.cleanup = append(h.cleanup, remove)
}
