package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// TracerName is the instrumentation scope of the gateway's spans.
const TracerName = delivery.TracerName

// Span names. The ingest span covers the whole provider request as the
// gateway handles it; the others are its children.
const (
	SpanIngest   = "webhook.ingest"
	SpanVerify   = "webhook.verify"
	SpanReadBody = "webhook.read_body"
	SpanNormal   = "webhook.normalize"
	SpanStore    = "webhook.store"
	SpanForward  = "webhook.forward"
)

// Span attributes. None holds a secret, a body or a header value: the ids
// and types are the provider's own names for its events, which the
// provider's answer and the stored event show anyway.
const (
	AttrSource     = delivery.AttrSource
	AttrProvider   = delivery.AttrProvider
	AttrMode       = attribute.Key("webhook.mode")
	AttrOutcome    = attribute.Key("webhook.outcome")
	AttrStatus     = delivery.AttrStatus
	AttrEventID    = delivery.AttrEventID
	AttrEventIDs   = attribute.Key("webhook.event.ids")
	AttrEventType  = delivery.AttrEventType
	AttrEventCount = attribute.Key("webhook.event.count")
	AttrInserted   = attribute.Key("webhook.store.inserted")
	AttrStage      = attribute.Key("webhook.verify.stage")
	AttrAnswer     = attribute.Key("webhook.answer")
	AttrBodySize   = attribute.Key("http.request.body.size")
)

// maxTracedIDs bounds the event ids an ingest span lists for a batch: a
// loyalty batch may hold fifty thousand, and a span is not an index.
const maxTracedIDs = 10

// traceContext writes the W3C traceparent and tracestate headers of a
// forward, so that the backend's spans join the gateway's trace whatever
// propagators Caddy was set up with.
var traceContext propagation.TraceContext

// ingestTrace is one provider request's ingest span. A nil *ingestTrace is
// a request that is not traced: every method is then a no-op that
// allocates nothing.
type ingestTrace struct {
	tracer trace.Tracer
	span   trace.Span
}

// startIngest starts the ingest span when the request runs under a
// recording span (Caddy's tracing handler), with that span's own
// TracerProvider, so the gateway needs no tracing config of its own and a
// route without tracing pays nothing. The returned request carries the
// ingest span in its context; it is r itself when nothing is traced.
//
// Which span is the parent: when Caddy's request span begins its trace,
// the ingest span is its child. When the request span continues a trace
// begun elsewhere (the provider sent a traceparent), the ingest span is
// its child only if trustParent says the provider's context is honoured;
// otherwise it starts a new trace, linked to the request span, so that
// nothing a provider sends decides the trace (or the sampling) of the
// events the gateway stores and delivers.
func (g *Gateway) startIngest(r *http.Request) (*http.Request, *ingestTrace) {
	parent := trace.SpanFromContext(r.Context())
	if !parent.IsRecording() {
		return r, nil
	}
	g.redactSpan(parent)
	tracer := parent.TracerProvider().Tracer(TracerName)
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			AttrSource.String(g.Normalize.Source),
			AttrProvider.String(g.Normalize.Provider),
			AttrMode.String(string(g.mode())),
		),
	}
	if !g.TrustTraceparent && continuesTrace(parent) {
		opts = append(opts, trace.WithNewRoot(),
			trace.WithLinks(trace.Link{SpanContext: parent.SpanContext()}))
	}
	ctx, span := tracer.Start(r.Context(), SpanIngest, opts...)
	return r.WithContext(ctx), &ingestTrace{tracer: tracer, span: span}
}

// redactSpan removes the route's path secrets from the string attributes
// of Caddy's request span, which records the request's path and query
// (url.path, url.query) as it starts: for a route whose secret is in its
// URL, that span would otherwise hold the secret, kept by whatever stores
// traces. An attribute set again replaces the value recorded before.
func (g *Gateway) redactSpan(span trace.Span) {
	recorded, ok := span.(interface{ Attributes() []attribute.KeyValue })
	if !ok {
		return
	}
	for _, v := range g.Verifiers {
		pr, ok := v.(pathRedactor)
		if !ok {
			continue
		}
		for _, kv := range recorded.Attributes() {
			if kv.Value.Type() != attribute.STRING {
				continue
			}
			value := kv.Value.AsString()
			path, query, hasQuery := strings.Cut(value, "?")
			if strings.Contains(string(kv.Key), "query") {
				path, query, hasQuery = "", value, true
			}
			redacted := pr.Redact(path)
			if hasQuery {
				if redacted != "" || path != "" {
					redacted += "?"
				}
				redacted += pr.RedactQuery(query)
			}
			if redacted != value {
				span.SetAttributes(attribute.String(string(kv.Key), redacted))
			}
		}
	}
}

// continuesTrace reports whether span has a parent, which for Caddy's
// request span is the context taken from the incoming request. A span
// that does not say is taken to have one: starting a new trace is the
// safe way to be wrong.
func continuesTrace(span trace.Span) bool {
	p, ok := span.(interface{ Parent() trace.SpanContext })
	return !ok || p.Parent().IsValid()
}

func (g *Gateway) mode() Mode {
	if g.Mode == Sync {
		return Sync
	}
	return Async
}

// step is a child span of the ingest span; the zero step is not traced.
type step struct{ span trace.Span }

// start begins a child span of whatever span ctx holds (the ingest span,
// or a step of it).
func (t *ingestTrace) start(ctx context.Context, name string) (context.Context, step) {
	if t == nil {
		return ctx, step{}
	}
	ctx, span := t.tracer.Start(ctx, name)
	return ctx, step{span}
}

// setString and setInt set one attribute. They take no attribute.KeyValue
// list: a variadic argument escapes to the heap at every call, traced or
// not, and the untraced path must allocate nothing.
func (s step) setString(key attribute.Key, value string) {
	if s.span != nil {
		s.span.SetAttributes(key.String(value))
	}
}

func (s step) setInt(key attribute.Key, value int) {
	if s.span != nil {
		s.span.SetAttributes(key.Int(value))
	}
}

// fail marks the step failed with msg, the words the provider's answer
// carries (never the internal reason, which may quote what was sent).
func (s step) fail(msg string) {
	if s.span != nil {
		s.span.SetStatus(codes.Error, msg)
	}
}

func (s step) end() {
	if s.span != nil {
		s.span.End()
	}
}

func (t *ingestTrace) end() {
	if t != nil {
		t.span.End()
	}
}

// outcome records what the Observer is told.
func (t *ingestTrace) outcome(provider, outcome string) {
	if t != nil {
		t.span.SetAttributes(AttrProvider.String(provider), AttrOutcome.String(outcome))
	}
}

// refuse answers with an error, recorded on the ingest span with the
// answer's own words.
func (t *ingestTrace) refuse(w http.ResponseWriter, code int, msg string) error {
	if t != nil {
		t.span.SetAttributes(AttrStatus.Int(code))
		t.span.SetStatus(codes.Error, msg)
	}
	return writeError(w, code, msg)
}

// answer writes the provider's answer for the events handled; a 5xx is an
// error of the ingest span, described by the answer's status.
func (t *ingestTrace) answer(w http.ResponseWriter, code int, status string, events []eventAnswer) error {
	if t != nil {
		t.span.SetAttributes(AttrStatus.Int(code), AttrAnswer.String(status))
		if code >= 500 {
			t.span.SetStatus(codes.Error, status)
		}
	}
	return writeAnswer(w, code, status, events)
}

// events records the events a request carried: a single event's id and
// type, or a batch's count and its first ids.
func (t *ingestTrace) events(s step, recs []*store.Record) {
	if t == nil || len(recs) == 0 {
		return
	}
	attrs := []attribute.KeyValue{AttrEventCount.Int(len(recs)), AttrEventType.String(recs[0].Type)}
	if len(recs) == 1 {
		attrs = append(attrs, AttrEventID.String(recs[0].ID))
	} else {
		ids := make([]string, 0, min(len(recs), maxTracedIDs))
		for _, rec := range recs[:cap(ids)] {
			ids = append(ids, rec.ID)
		}
		attrs = append(attrs, AttrEventIDs.StringSlice(ids))
	}
	t.span.SetAttributes(attrs...)
	if s.span != nil {
		s.span.SetAttributes(attrs...)
	}
}

// injectForward puts the forward span's context into the headers sent to
// the backend.
func (s step) injectForward(ctx context.Context, h http.Header) {
	if s.span != nil {
		traceContext.Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// forwarded records the backend's answer to one forward.
func (s step) forwarded(status int, err error) {
	if s.span == nil {
		return
	}
	if status != 0 {
		s.span.SetAttributes(AttrStatus.Int(status))
	}
	switch {
	case err != nil && status == 0:
		s.span.SetStatus(codes.Error, "no response from the backend")
	case err != nil:
		s.span.SetStatus(codes.Error, "backend answered "+strconv.Itoa(status))
	}
}

// insert is the store write of a request, under its own span: the wait for
// the group commit that makes the events durable is part of it.
func (g *Gateway) insert(ctx context.Context, tr *ingestTrace, in *store.Ingest, durable bool) ([]store.InsertResult, error) {
	ctx, storing := tr.start(ctx, SpanStore)
	defer storing.end()
	storing.setInt(AttrEventCount, len(in.Records))
	results, err := g.Store.Insert(ctx, in, durable)
	if err != nil {
		storing.fail("event could not be stored; retry later")
		return nil, err
	}
	if storing.span != nil {
		inserted := 0
		for _, res := range results {
			if res.Inserted {
				inserted++
			}
		}
		storing.setInt(AttrInserted, inserted)
	}
	return results, nil
}

// eventTrace returns the W3C trace context of the ingest span that ctx
// holds, to be stored with each event of the request and carried in it as
// the CloudEvents distributed tracing extension: each later delivery
// attempt and replay of the event, perhaps by another gateway sharing the
// store, is a span of that trace (see delivery/trace.go), and the event
// tells its backend where its trace starts. Empty when the request is not
// traced (no recording span: the ingest span is started for every request
// under a recording one); nothing is allocated then.
func eventTrace(ctx context.Context) (parent, state string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return "", ""
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	parent, state = carrier["traceparent"], carrier["tracestate"]
	if len(state) > maxTraceState {
		state = "" // vendors' entries the event's contract has no room for
	}
	return parent, state
}

// maxTraceState bounds the tracestate an event carries (the canonical
// schema's limit): W3C allows 32 entries of up to 512 bytes each, which a
// trusted provider's context could bring along.
const maxTraceState = 512
