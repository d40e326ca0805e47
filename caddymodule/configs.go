package caddymodule

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
)

// loadedConfig is what the module keeps about one loaded Caddy config
// while any of its handlers is live: the sources its routes write (see
// identity.go), the destination names they deliver to (destination.go)
// and whether a newer config has been provisioned beside it
// (see reload.go). Caddy provisions a config's handlers one at a time and
// runs the old config beside the new one during a reload, so neither can
// be a plain package-level value.
type loadedConfig struct {
	// superseded is set once a newer config has provisioned a handler.
	superseded atomic.Bool

	// Guarded by configs' mutex.
	refs   int                       // handlers not yet cleaned up
	claims map[string][]*sourceClaim // by source
	dests  map[string][]*destClaim   // by destination name (see destination.go)
}

// configs tracks the configs with live handlers, oldest first. Caddy gives
// every config load a metrics registry of its own, which every module of
// that config sees (caddy.Context.GetMetricsRegistry) and which is the only
// per-config identity a module can see, so configs are keyed by it.
var configs = struct {
	sync.Mutex
	byKey map[any]*loadedConfig
	order []*loadedConfig
}{byKey: map[any]*loadedConfig{}}

// joinConfig returns the config ctx belongs to, marking every older one
// superseded, and the function that leaves it, which the handler's Cleanup
// calls.
func joinConfig(ctx caddy.Context) (*loadedConfig, func()) {
	key := any(ctx.GetMetricsRegistry())
	configs.Lock()
	defer configs.Unlock()
	c := configs.byKey[key]
	if c == nil {
		c = &loadedConfig{claims: map[string][]*sourceClaim{}, dests: map[string][]*destClaim{}}
		for _, older := range configs.order {
			older.superseded.Store(true)
		}
		configs.byKey[key] = c
		configs.order = append(configs.order, c)
	}
	c.refs++
	var once sync.Once
	return c, func() { once.Do(func() { c.leave(key) }) }
}

func (c *loadedConfig) leave(key any) {
	configs.Lock()
	defer configs.Unlock()
	if c.refs--; c.refs > 0 {
		return
	}
	delete(configs.byKey, key)
	configs.order = slices.DeleteFunc(configs.order, func(x *loadedConfig) bool { return x == c })
	// A config that failed to load is cleaned up while the one it was to
	// replace keeps running: that one is the newest again.
	if n := len(configs.order); n > 0 {
		configs.order[n-1].superseded.Store(false)
	}
}

// claim adds cl on source, or reports the route of this config that
// writes source with other auth while either of the two does not share
// it. The returned function drops the claim.
func (c *loadedConfig) claim(source string, cl *sourceClaim) (func(), error) {
	configs.Lock()
	defer configs.Unlock()
	for _, other := range c.claims[source] {
		if other.auth == cl.auth || (other.share && cl.share) {
			continue
		}
		return nil, fmt.Errorf("source %q: %w (this route: %s; another route of this config: %s); "+
			"a credential vouches for its own route's source only: give one of the routes a source of its own, "+
			`or, if both are meant to write %q, set share_source on both (JSON "share_source": true)`,
			source, ErrSharedSource, cl.route, other.route, source)
	}
	c.claims[source] = append(c.claims[source], cl)
	var once sync.Once
	return func() {
		once.Do(func() {
			configs.Lock()
			defer configs.Unlock()
			c.claims[source] = slices.DeleteFunc(c.claims[source], func(x *sourceClaim) bool { return x == cl })
			if len(c.claims[source]) == 0 {
				delete(c.claims, source)
			}
		})
	}, nil
}

// claimDestination adds cl on the destination name, or reports the route of
// this config that gives the name other settings. The returned function
// drops the claim.
func (c *loadedConfig) claimDestination(name string, cl *destClaim) (func(), error) {
	configs.Lock()
	defer configs.Unlock()
	for _, other := range c.dests[name] {
		if why := cl.conflict(other); why != "" {
			return nil, destinationError(name, why, cl, other)
		}
	}
	c.dests[name] = append(c.dests[name], cl)
	var once sync.Once
	return func() {
		once.Do(func() {
			configs.Lock()
			defer configs.Unlock()
			c.dests[name] = slices.DeleteFunc(c.dests[name], func(x *destClaim) bool { return x == cl })
			if len(c.dests[name]) == 0 {
				delete(c.dests, name)
			}
		})
	}, nil
}
