package caddymodule

import (
	"net/http"

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

// closeIfSuperseded returns w, made to ask the client to close its HTTP/1
// connection after this response if a newer config has taken over by the
// time the response is written. The check is made then and not when the
// request arrives, because a request can wait on a group commit for as
// long as a reload takes.
func (c *loadedConfig) closeIfSuperseded(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	if c == nil || r.ProtoMajor != 1 {
		return w
	}
	return &closeOnReload{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, config: c}
}

// closeOnReload adds "Connection: close" to a response begun after its
// config was superseded.
type closeOnReload struct {
	caddyhttp.ResponseWriterWrapper
	config  *loadedConfig
	started bool
}

func (w *closeOnReload) WriteHeader(status int) {
	if !w.started && status >= 200 {
		w.started = true
		if w.config.superseded.Load() {
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
