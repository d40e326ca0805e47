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

// registry tracks live stores by name and live routes by source, each with
// the destinations it delivers to. During a reload the old and the new
// config are both registered for a moment: stores are reference-counted
// (the pool hands both configs the same store.Store), and a source may have
// several routes, the newest last.
// Stores are known by name (StoreEngine.StoreName; a Badger store's is its
// absolute directory).
type registry struct {
	mu     sync.Mutex
	stores map[string]*liveStore
	routes map[string][]*liveRoute
	seq    uint64
}

type liveStore struct {
	db     store.Store
	refs   int
	counts *countcache.Cache[map[store.Status]int]
	// oldest is what waits for delivery: the deliveries per destination
	// and status, and when the oldest waiting was received, by source and
	// by destination (see destinations.go).
	oldest *countcache.Cache[*waiting]
}

// liveRoute is one Handler's claim on a source.
type liveRoute struct {
	store   string // the name of the store it writes to
	mode    handlers.Mode
	engines []*delivery.Engine // one per destination; none for a sync route
	seq     uint64             // registration order: the newest route wins a lookup
}

func newRegistry() *registry {
	return &registry{stores: map[string]*liveStore{}, routes: map[string][]*liveRoute{}}
}

// add registers a Handler's store and, for each of its sources, its route;
// the returned function undoes exactly this registration.
func (r *registry) add(name string, db store.Store, sources []string, mode handlers.Mode, engines []*delivery.Engine) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls := r.stores[name]
	if ls == nil {
		ls = &liveStore{db: db, counts: newCountsCache(db)}
		ls.oldest = newWaitingCache(db)
		r.stores[name] = ls
	}
	ls.refs++
	r.seq++
	route := &liveRoute{store: name, mode: mode, engines: engines, seq: r.seq}
	for _, s := range sources {
		r.routes[s] = append(r.routes[s], route)
	}
	var once sync.Once
	return func() {
		once.Do(func() { r.remove(name, sources, route) })
	}
}

func (r *registry) remove(name string, sources []string, route *liveRoute) {
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
	if ls := r.stores[name]; ls != nil {
		if ls.refs--; ls.refs <= 0 {
			delete(r.stores, name)
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

// store returns the live store named name, or the only live store when
// name is empty. A name no store has is tried as a relative Badger directory,
// resolved like store_dir is, against Caddy's working directory.
func (r *registry) store(name string) (string, *liveStore, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		switch len(r.stores) {
		case 0:
			return "", nil, errNoStore
		case 1:
			for n, ls := range r.stores {
				return n, ls, nil
			}
		}
		return "", nil, fmt.Errorf("%w (%s): choose one with store=<name>", errAmbiguousStore, strings.Join(r.namesLocked(), ", "))
	}
	if ls := r.stores[name]; ls != nil {
		return name, ls, nil
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", nil, fmt.Errorf("store %q: %w", name, err)
	}
	ls := r.stores[abs]
	if ls == nil {
		if len(r.stores) == 0 {
			return "", nil, errNoStore
		}
		return "", nil, fmt.Errorf("%w %q; loaded stores: %s", errUnknownStore, name, strings.Join(r.namesLocked(), ", "))
	}
	return abs, ls, nil
}

// target is the live store named name (the only one when name is empty) as the
// operations of package ops see it.
func (r *registry) target(name string) (ops.Target, error) {
	n, ls, err := r.store(name)
	switch {
	case errors.Is(err, errNoStore):
		return ops.Target{}, ops.Mark(ops.ErrNotFound, fmt.Errorf("%w: no webhook_gateway handler in the running config", err))
	case err != nil:
		return ops.Target{}, ops.Mark(ops.ErrInvalid, err)
	}
	t := ops.Target{
		Name:    n,
		Store:   ls.db,
		Sources: r.sources(n),
		Replayer: func(destination string) (ops.Replayer, error) {
			e, err := r.engine(n, destination)
			if err != nil {
				return nil, err // not a nil *Engine in a non-nil interface
			}
			return e, nil
		},
	}
	r.operate(&t, n, ls)
	return t, nil
}

// sources lists the sources of the live routes on the store named name,
// sorted.
func (r *registry) sources(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for s, rs := range r.routes {
		if slices.ContainsFunc(rs, func(x *liveRoute) bool { return x.store == name }) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// names lists the names of the live stores, sorted.
func (r *registry) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.namesLocked()
}

func (r *registry) namesLocked() []string {
	out := make([]string, 0, len(r.stores))
	for n := range r.stores {
		out = append(out, n)
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

// engine returns the engine that replays events to destination from the
// store named name: the newest async route's, so after a reload replays use
// the new config's upstreams and signing secret even while the old config
// drains. A sync route binds its events to its source; replaying those is
// refused with errSyncRoute.
func (r *registry) engine(name, destination string) (*delivery.Engine, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found *delivery.Engine
	var newest uint64
	sync := false
	for source, rs := range r.routes {
		for _, route := range rs {
			if route.store != name {
				continue
			}
			if route.mode == handlers.Sync && source == destination {
				sync = true
			}
			for _, e := range route.engines {
				if e.Destination() == destination && route.seq > newest {
					found, newest = e, route.seq
				}
			}
		}
	}
	switch {
	case found != nil:
		return found, nil
	case sync:
		return nil, fmt.Errorf("the events of source %s are delivered synchronously (deliver sync): %w", destination, errSyncRoute)
	}
	return nil, fmt.Errorf("no loaded route delivers to destination %q with this store: %w", destination, errSyncRoute)
}

// register adds the provisioned Handler to the live registry and schedules
// its removal at Cleanup. It must run after the store is opened and the
// engine started, and its removal before the store is released, so nothing
// reads a closed store through the registry.
func (h *Handler) register() {
	remove := live.add(h.storeName, h.db, h.sources(), h.gw.Mode, h.engines)
	h.cleanup = append(h.cleanup, remove)
}
