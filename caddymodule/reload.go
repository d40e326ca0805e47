package caddymodule

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Keep-alive across a reload. Caddy loads a new config beside the running
// one, then shuts the old config's servers down: Go's http.Server closes
// each keep-alive connection once its current response is written. A
// response written just before that shutdown began carries no
// "Connection: close", so the client sends its next request on a
// connection the server is about to close, and gets a reset or EOF
// (net/http: "such is life with HTTP/1.1"). The gateway makes this worse
// than a plain route: a group commit answers every request waiting on one
// fsync at the same instant, so one reload catches all of them at once.
//
// Between the new config's provisioning and the old servers' shutdown
// there is a window the module can see: once a newer config has
// provisioned its handlers, the old config's handlers answer with
// "Connection: close", and the client opens a new connection for its next
// request instead of reusing one that is about to close. If the new config
// fails to load, its handlers are cleaned up and the old config keeps its
// keep-alive.

// configGen is one loaded config's share of the handlers.
type configGen struct {
	// superseded is set once a newer config has provisioned a handler.
	superseded atomic.Bool
	refs       int // handlers of this config not yet cleaned up
}

// configGens tracks the configs with live handlers, oldest first. Caddy
// gives every config load its own metrics registry, which is the only
// per-config identity a module can see, so configs are keyed by it.
var configGens = struct {
	sync.Mutex
	byKey map[any]*configGen
	order []*configGen
}{byKey: map[any]*configGen{}}

// joinConfigGen returns the generation of the config ctx belongs to,
// marking every older one superseded, and a function that leaves it.
func joinConfigGen(ctx caddy.Context) (*configGen, func()) {
	key := any(ctx.GetMetricsRegistry())
	configGens.Lock()
	defer configGens.Unlock()
	g := configGens.byKey[key]
	if g == nil {
		g = &configGen{}
		for _, older := range configGens.order {
			older.superseded.Store(true)
		}
		configGens.byKey[key] = g
		configGens.order = append(configGens.order, g)
	}
	g.refs++
	var once sync.Once
	return g, func() { once.Do(func() { leaveConfigGen(key, g) }) }
}

func leaveConfigGen(key any, g *configGen) {
	configGens.Lock()
	defer configGens.Unlock()
	if g.refs--; g.refs > 0 {
		return
	}
	delete(configGens.byKey, key)
	for i, x := range configGens.order {
		if x == g {
			configGens.order = append(configGens.order[:i], configGens.order[i+1:]...)
			break
		}
	}
	// A config that failed to load is cleaned up while the one it was to
	// replace keeps running: that one is the newest again.
	if n := len(configGens.order); n > 0 {
		configGens.order[n-1].superseded.Store(false)
	}
}

// closeIfSuperseded returns w, made to ask the client to close its HTTP/1
// connection after this response if a newer config has taken over by the
// time the response is written. The check is made then and not when the
// request arrives, because a request can wait on a group commit for as
// long as a reload takes.
func (g *configGen) closeIfSuperseded(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if g == nil || r.ProtoMajor != 1 {
		return w
	}
	return &closeOnReload{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, gen: g}
}

// closeOnReload adds "Connection: close" to a response begun after its
// config was superseded.
type closeOnReload struct {
	*caddyhttp.ResponseWriterWrapper
	gen     *configGen
	started bool
}

func (w *closeOnReload) WriteHeader(status int) {
	if !w.started && status >= 200 {
		w.started = true
		if w.gen.superseded.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriterWrapper.WriteHeader(status)
}

func (w *closeOnReload) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriterWrapper.Write(b)
}
