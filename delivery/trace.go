package delivery

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// TracerName is the instrumentation scope of the gateway's spans, the
// delivery engine's and the request path's (package handlers) alike.
const TracerName = "github.com/webhookgw/caddy-webhook-gateway"

// Span names of the engine. Each is a span of the trace of the request
// that brought the event (store.Record.TraceParent), a child of the
// gateway's ingest span, whenever and wherever it is made.
const (
	// SpanDeliver is one scheduled delivery attempt.
	SpanDeliver = "webhook.deliver"
	// SpanReplay is one operator's replay (admin API, CLI or console).
	SpanReplay = "webhook.replay"
)

// Span attributes of the engine's spans. The source, provider, event id
// and type have the names the ingest spans give them. None holds a secret,
// a body or a header value; the upstream is not named either, since its
// URL may hold a token.
const (
	AttrSource      = attribute.Key("webhook.source")
	AttrProvider    = attribute.Key("webhook.provider")
	AttrEventID     = attribute.Key("webhook.event.id")
	AttrEventType   = attribute.Key("webhook.event.type")
	AttrDestination = attribute.Key("webhook.destination")
	AttrAttempt     = attribute.Key("webhook.attempt")
	AttrStatus      = attribute.Key("http.response.status_code")
	// AttrNext is where a scheduled attempt left its event: delivered,
	// retrying or dead (the store.Status it was given).
	AttrNext = attribute.Key("webhook.delivery.next")
	// AttrDeadReason is why an attempt left its event dead.
	AttrDeadReason = attribute.Key("webhook.dead.reason")
)

// TracerProviderFunc returns the TracerProvider the engine makes its spans
// with, or nil while there is none (attempts are then not traced).
type TracerProviderFunc func() trace.TracerProvider

// traceContext reads a record's stored trace context and writes a
// delivery's traceparent and tracestate headers, whatever propagators the
// process was set up with: the W3C headers are the contract with backends.
var traceContext propagation.TraceContext

// attemptSpan is the span of one attempt or replay; the zero value is an
// attempt that is not traced, on which every method does nothing.
type attemptSpan struct{ span trace.Span }

// startAttempt starts the span of attempt number of rec when rec carries
// the trace context of a traced request and the engine has a
// TracerProvider. The span is a child of the request's ingest span, so the
// attempts, the replays and the backend's own spans are all in the trace
// that began with the provider's request, hours later and on another
// gateway too (a link would put each attempt in a trace of its own, and
// the backend's spans with it). A replay's span also links to the span ctx
// holds, if any: the operator's request, when that was traced.
func (e *Engine) startAttempt(ctx context.Context, rec *store.Record, number int, replay bool) (context.Context, attemptSpan) {
	if rec.TraceParent == "" || e.cfg.Tracing == nil {
		return ctx, attemptSpan{}
	}
	tp := e.cfg.Tracing()
	if tp == nil {
		return ctx, attemptSpan{}
	}
	stored := propagation.MapCarrier{"traceparent": rec.TraceParent}
	if rec.TraceState != "" {
		stored["tracestate"] = rec.TraceState
	}
	parent := trace.SpanContextFromContext(traceContext.Extract(context.Background(), stored))
	if !parent.IsValid() {
		return ctx, attemptSpan{}
	}
	name := SpanDeliver
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			AttrSource.String(rec.Source),
			AttrProvider.String(rec.Provider),
			AttrEventID.String(rec.ID),
			AttrEventType.String(rec.Type),
			AttrDestination.String(e.cfg.Destination),
			AttrAttempt.Int(number),
		),
	}
	if replay {
		name = SpanReplay
		if operator := trace.SpanContextFromContext(ctx); operator.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: operator}))
		}
	}
	ctx, span := tp.Tracer(TracerName).Start(trace.ContextWithRemoteSpanContext(ctx, parent), name, opts...)
	return ctx, attemptSpan{span}
}

// inject writes the attempt span's traceparent and tracestate into h, the
// headers of the request to the backend, so its spans join the trace.
func (s attemptSpan) inject(ctx context.Context, h http.Header) {
	if s.span != nil {
		traceContext.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// sent records the backend's answer. The status description is the
// gateway's own words: the attempt's Error may quote the backend's body.
func (s attemptSpan) sent(a store.Attempt) {
	if s.span == nil {
		return
	}
	if a.Status != 0 {
		s.span.SetAttributes(AttrStatus.Int(a.Status))
	}
	switch {
	case a.Status == 0:
		s.span.SetStatus(codes.Error, "no response from the backend")
	case a.Status < 200 || a.Status > 299:
		s.span.SetStatus(codes.Error, "backend answered "+strconv.Itoa(a.Status))
	}
}

// settle records where a scheduled attempt left its event and ends the
// span.
func (s attemptSpan) settle(d store.Decision) {
	if s.span == nil {
		return
	}
	s.span.SetAttributes(AttrNext.String(string(d.Status)))
	if d.Reason != "" {
		s.span.SetAttributes(AttrDeadReason.String(string(d.Reason)))
	}
	s.span.End()
}

func (s attemptSpan) end() {
	if s.span != nil {
		s.span.End()
	}
}
