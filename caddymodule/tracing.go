package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
)

// deliveryTracing gives the delivery engines of every route the
// TracerProvider their spans are made with: the one of the last recording
// request span a route served, which under Caddy's tracing directive is
// Caddy's provider (one per process, with the exporter, sampler and
// resource the OTEL_* variables set). So a delivery attempt's span goes
// where the ingest span of its event went, and the gateway has no exporter
// settings of its own. Until a traced request has been served in this
// process (after a start, or on a gateway that only delivers what others
// stored in a shared database), attempts are not traced, unless the route
// has trace_deliveries (see ownTracing).
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

// ownTracing is the module's own TracerProvider, for the routes with
// trace_deliveries: configured by the same OTEL_* variables as Caddy's
// (exporter, endpoint, sampler, service name) and with a resource built as
// Caddy builds its own, so their spans read alike. One per process, made
// by the first route that needs it and shut down, its spans flushed, when
// the last such route unloads (a reload keeps it: the new config takes it
// before the old one lets it go).
var ownTracing ownTracer

type ownTracer struct {
	mu    sync.Mutex
	users int
	tp    atomic.Pointer[sdktrace.TracerProvider]
}

// acquire returns the provider, making it for the first user; release
// gives it back.
func (o *ownTracer) acquire() (release func(), err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.users == 0 {
		exp, err := autoexport.NewSpanExporter(context.Background())
		if err != nil {
			return nil, fmt.Errorf("trace_deliveries: making the span exporter the OTEL_* variables describe: %w", err)
		}
		version, _ := caddy.Version()
		res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
			attribute.String("webengine.name", caddyhttp.ServerHeader),
			attribute.String("webengine.version", version),
		))
		if err != nil {
			res = resource.Default() // only conflicting schema URLs fail, and these have none
		}
		o.tp.Store(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)))
	}
	o.users++
	var once sync.Once
	return func() { once.Do(o.release) }, nil
}

func (o *ownTracer) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users--
	if o.users > 0 {
		return
	}
	tp := o.tp.Swap(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tp.Shutdown(ctx) // flushes; spans it cannot send now are lost either way
}

// tracingFor is the delivery.TracerProviderFunc of a route's engines:
// Caddy's provider once a traced request has shown it, and before that,
// with trace_deliveries, the module's own.
func tracingFor(own bool) delivery.TracerProviderFunc {
	if !own {
		return deliveryTracing.provider
	}
	return func() trace.TracerProvider {
		if tp := deliveryTracing.provider(); tp != nil {
			return tp
		}
		if tp := ownTracing.tp.Load(); tp != nil {
			return tp
		}
		return nil
	}
}
