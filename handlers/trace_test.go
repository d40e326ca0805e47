package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// tracedRequest serves body under a request span started as Caddy's
// tracing handler starts it: from the context extracted from the incoming
// headers, with the recorder's provider. It returns the recorded spans and
// the request span.
func tracedRequest(t *testing.T, g *Gateway, body []byte, incoming http.Header, next Next) ([]sdktrace.ReadOnlySpan, trace.SpanContext, int) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	req.Header.Set(tokenHeader, token)
	for k, v := range incoming {
		req.Header[k] = v
	}
	ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := tp.Tracer("caddy").Start(ctx, "handler", trace.WithSpanKind(trace.SpanKindServer))
	w := httptest.NewRecorder()
	if err := g.ServeHTTP(w, req.WithContext(ctx), next); err != nil {
		t.Fatal(err)
	}
	span.End()
	return rec.Ended(), span.SpanContext(), w.Code
}

func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	t.Fatalf("no span %s among %d", name, len(spans))
	return nil
}

func TestTraceSyncSpans(t *testing.T) {
	g, _ := newGateway(t, Sync, normalize.USAePay)
	be := &backend{}
	body := testdata(t, "usaepay", "transaction.sale.success")
	spans, request, code := tracedRequest(t, g, body, nil, be.next)
	if code != http.StatusOK {
		t.Fatalf("answer %d", code)
	}
	ingest := spanNamed(t, spans, SpanIngest)
	if ingest.Parent().SpanID() != request.SpanID() || ingest.SpanContext().TraceID() != request.TraceID() {
		t.Errorf("ingest span's parent %v, want the request span %v", ingest.Parent(), request)
	}
	for _, name := range []string{SpanVerify, SpanReadBody, SpanNormal, SpanStore, SpanForward} {
		s := spanNamed(t, spans, name)
		if s.Parent().SpanID() != ingest.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the ingest span", name)
		}
	}
	attrs := map[string]string{}
	for _, kv := range ingest.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	want := map[string]string{
		"webhook.source": "", "webhook.provider": "usaepay", "webhook.mode": "sync",
		"webhook.outcome": "accepted", "webhook.event.id": exampleID, "webhook.event.type": "transaction.sale.success",
		"http.response.status_code": "200", "webhook.event.count": "1",
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("ingest %s = %q, want %q", k, attrs[k], v)
		}
	}
	forward := spanNamed(t, spans, SpanForward)
	parent := be.header[0].Get("Traceparent")
	if !strings.Contains(parent, forward.SpanContext().TraceID().String()+"-"+forward.SpanContext().SpanID().String()) {
		t.Errorf("backend's traceparent %q, want the forward span %v", parent, forward.SpanContext())
	}
}

func TestTraceIncomingTraceparent(t *testing.T) {
	const provider = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	incoming := http.Header{"Traceparent": {provider}}
	for _, trust := range []bool{false, true} {
		g, _ := newGateway(t, Async, normalize.USAePay)
		g.TrustTraceparent = trust
		body := testdata(t, "usaepay", "transaction.sale.success")
		spans, request, code := tracedRequest(t, g, body, incoming, nil)
		if code != http.StatusAccepted {
			t.Fatalf("answer %d", code)
		}
		if request.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
			t.Fatalf("request span not in the provider's trace: %v", request)
		}
		ingest := spanNamed(t, spans, SpanIngest)
		inProvider := ingest.SpanContext().TraceID() == request.TraceID()
		if trust {
			if !inProvider || ingest.Parent().SpanID() != request.SpanID() {
				t.Errorf("trusted: ingest span parent %v, want the request span", ingest.Parent())
			}
			continue
		}
		if inProvider || ingest.Parent().IsValid() {
			t.Errorf("untrusted: ingest span in trace %v with parent %v, want a new root", ingest.SpanContext().TraceID(), ingest.Parent())
		}
		if links := ingest.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != request.SpanID() {
			t.Errorf("untrusted: links %v, want the request span", links)
		}
		if s := spanNamed(t, spans, SpanStore); s.SpanContext().TraceID() != ingest.SpanContext().TraceID() {
			t.Error("store span outside the ingest span's trace")
		}
	}
}

func TestTraceRejectedSignature(t *testing.T) {
	g, obs := newGateway(t, Sync, normalize.USAePay)
	body := testdata(t, "usaepay", "transaction.sale.success")
	spans, _, code := tracedRequest(t, g, body, http.Header{tokenHeader: {"wrong"}}, nil)
	if code != http.StatusUnauthorized || obs.get("usaepay/unauthorized") != 1 {
		t.Fatalf("answer %d, outcomes %v", code, obs.seen)
	}
	for _, name := range []string{SpanIngest, SpanVerify} {
		s := spanNamed(t, spans, name)
		if s.Status().Code != codes.Error || s.Status().Description != "unauthorized" {
			t.Errorf("%s status %+v", name, s.Status())
		}
	}
	for _, s := range spans {
		if s.Name() == SpanReadBody || s.Name() == SpanStore {
			t.Errorf("span %s for a request refused on its headers", s.Name())
		}
	}
}

func TestTraceBatchListsBoundedIDs(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.OpenLoyalty)
	spans, _, code := tracedRequest(t, g, couponBatch(25), nil, nil)
	if code != http.StatusAccepted {
		t.Fatalf("answer %d", code)
	}
	ingest := spanNamed(t, spans, SpanIngest)
	for _, kv := range ingest.Attributes() {
		switch kv.Key {
		case AttrEventCount:
			if kv.Value.AsInt64() != 25 {
				t.Errorf("count %d", kv.Value.AsInt64())
			}
		case AttrEventIDs:
			if n := len(kv.Value.AsStringSlice()); n != maxTracedIDs {
				t.Errorf("%d ids listed", n)
			}
		}
	}
}

// TestUntracedRequestStartsNoSpan: under a span that does not record
// (no tracing, or sampled out), the request keeps its context.
func TestUntracedRequestStartsNoSpan(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.USAePay)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span := tp.Tracer("caddy").Start(context.Background(), "handler")
	defer span.End()
	req := httptest.NewRequest(http.MethodPost, "/hooks", nil).WithContext(ctx)
	if r, tr := g.startIngest(req); r != req || tr != nil {
		t.Error("a span was started under a request span that does not record")
	}
}

// TestTraceRedactsPathSecretFromRequestSpan: Caddy's request span records
// the URL as it starts; a path secret in it is replaced, other values kept.
func TestTraceRedactsPathSecretFromRequestSpan(t *testing.T) {
	const secret = "s3cr3t-segment"
	ps, err := verify.NewPathSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{Verifiers: []verify.Verifier{ps}}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	_, span := tp.Tracer("caddy").Start(context.Background(), "handler", trace.WithAttributes(
		attribute.String("url.path", "/hooks/"+secret),
		attribute.String("url.query", "token="+secret+"&keep=1"),
		attribute.String("url.full", "http://gw/hooks/"+secret+"?back=%2Fhooks%2F"+secret),
		attribute.String("user_agent.original", "sender/1.0"),
	))
	g.redactSpan(span)
	span.End()
	want := map[attribute.Key]string{
		"url.path":            "/hooks/" + verify.Redacted,
		"url.query":           "token=" + verify.Redacted + "&keep=1",
		"url.full":            "http://gw/hooks/" + verify.Redacted + "?back=" + verify.Redacted,
		"user_agent.original": "sender/1.0",
	}
	for _, kv := range rec.Ended()[0].Attributes() {
		if w, ok := want[kv.Key]; ok && kv.Value.AsString() != w {
			t.Errorf("%s = %q, want %q", kv.Key, kv.Value.AsString(), w)
		}
	}
}

func TestTraceInvalidBodyCarriesTheAnswersWords(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.USAePay)
	spans, _, code := tracedRequest(t, g, []byte(`{"type":"event",`), nil, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("answer %d", code)
	}
	ingest, normalizing := spanNamed(t, spans, SpanIngest), spanNamed(t, spans, SpanNormal)
	if ingest.Status().Code != codes.Error || ingest.Status().Description == "" ||
		normalizing.Status() != ingest.Status() {
		t.Errorf("ingest status %+v, normalize status %+v", ingest.Status(), normalizing.Status())
	}
	for _, s := range spans {
		if s.Name() == SpanStore {
			t.Error("a store span for a body that did not parse")
		}
	}
}

func TestTraceContextStoredWithEvent(t *testing.T) {
	g, _ := newGateway(t, Async, normalize.USAePay)
	body := testdata(t, "usaepay", "transaction.sale.success")
	spans, _, code := tracedRequest(t, g, body, nil, nil)
	if code != http.StatusAccepted {
		t.Fatalf("answer %d", code)
	}
	ingest := spanNamed(t, spans, SpanIngest).SpanContext()
	rec, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + ingest.TraceID().String() + "-" + ingest.SpanID().String() + "-01"
	if rec.TraceParent != want {
		t.Errorf("stored traceparent %q, want the ingest span's %q", rec.TraceParent, want)
	}
	var ev schemas.Event
	if err := json.Unmarshal(rec.Event, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.TraceParent != want || ev.TraceState != "" {
		t.Errorf("event's distributed tracing extension %q %q, want %q", ev.TraceParent, ev.TraceState, want)
	}
	if err := schemas.Validate(&ev); err != nil {
		t.Error(err)
	}

	g, _ = newGateway(t, Async, normalize.USAePay)
	if res := serve(t, g, http.MethodPost, body, nil); res.code != http.StatusAccepted {
		t.Fatalf("untraced answer %d", res.code)
	}
	rec, err = g.Store.Get(context.Background(), "/usaepay", exampleID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.TraceParent != "" || rec.TraceState != "" || bytes.Contains(rec.Event, []byte("trace")) {
		t.Errorf("untraced request stored trace context %q %q in %s", rec.TraceParent, rec.TraceState, rec.Event)
	}
}

// A trusted provider's tracestate goes with the event when it fits the
// canonical schema's bound, and is left out when it does not.
func TestTraceStateFromTrustedProvider(t *testing.T) {
	const provider = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	long := "a=" + strings.Repeat("x", 250) + ",b=" + strings.Repeat("y", 250) + ",c=" + strings.Repeat("z", 10)
	for _, tc := range []struct{ sent, want string }{{"congo=t61rcWkgMzE", "congo=t61rcWkgMzE"}, {long, ""}} {
		g, _ := newGateway(t, Async, normalize.USAePay)
		g.TrustTraceparent = true
		body := testdata(t, "usaepay", "transaction.sale.success")
		_, _, code := tracedRequest(t, g, body, http.Header{"Traceparent": {provider}, "Tracestate": {tc.sent}}, nil)
		if code != http.StatusAccepted {
			t.Fatalf("answer %d", code)
		}
		rec, err := g.Store.Get(context.Background(), "/usaepay", exampleID)
		if err != nil {
			t.Fatal(err)
		}
		var ev schemas.Event
		if err := json.Unmarshal(rec.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if rec.TraceState != tc.want || ev.TraceState != tc.want {
			t.Errorf("sent tracestate of %d bytes: stored %q, event %q, want %q", len(tc.sent), rec.TraceState, ev.TraceState, tc.want)
		}
		if err := schemas.Validate(&ev); err != nil {
			t.Error(err)
		}
	}
}
