package caddymodule

import (
	"net/http"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// deliveryTracing gives the delivery engines of every route the
// TracerProvider their spans are made with: the one of the last recording
// request span a route served, which under Caddy's tracing directive is
// Caddy's provider (one per process, with the exporter, sampler and
// resource the OTEL_* variables set). So a delivery attempt's span goes
// where the ingest span of its event went, and the gateway has no exporter
// settings of its own. Until a traced request has been served in this
// process (after a start, or on a gateway that only delivers what others
// stored in a shared database), attempts are not traced.
var deliveryTracing tracerHolder

// tracerHolder keeps the TracerProvider of the last traced request.
type tracerHolder struct {
	p atomic.Pointer[tracerBox]
}

// tracerBox boxes an interface value for atomic.Pointer.
type tracerBox struct{ tp trace.TracerProvider }

// see remembers the provider of r's span when it is recording. The
// untraced path loads nothing and allocates nothing; a traced one
// allocates only when the provider changed (a config reload that changed
// Caddy's tracing).
func (t *tracerHolder) see(r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() {
		return
	}
	tp := span.TracerProvider()
	// An implementation's provider of a type that cannot be compared is
	// stored every time rather than compared (which would panic).
	if cur := t.p.Load(); cur != nil && reflect.TypeOf(tp).Comparable() && cur.tp == tp {
		return
	}
	t.p.Store(&tracerBox{tp})
}

// provider is the engines' delivery.TracerProviderFunc: nil until a traced
// request has been seen.
func (t *tracerHolder) provider() trace.TracerProvider {
	if cur := t.p.Load(); cur != nil {
		return cur.tp
	}
	return nil
}
