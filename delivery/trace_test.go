package delivery

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ingestParent is the trace context a traced request stored with its
// event: the ingest span, sampled, with a vendor's tracestate.
const (
	ingestTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ingestSpanID  = "00f067aa0ba902b7"
	ingestParent  = "00-" + ingestTraceID + "-" + ingestSpanID + "-01"
	ingestState   = "congo=t61rcWkgMzE"
)

// insertTraced stores a pending event as a traced route does.
func insertTraced(t *testing.T, st store.Store, id, parent, state string) {
	t.Helper()
	now := time.Now()
	ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": testSource,
		"type": "transaction.sale.success", "traceparent": parent})
	rec := &store.Record{Source: testSource, ID: id, Provider: "usaepay", Type: "transaction.sale.success",
		Deliveries: []store.Delivery{{Destination: testSource}}, ReceivedAt: now, Event: ev, Retention: time.Hour,
		TraceParent: parent, TraceState: state}
	if _, err := st.Insert(context.Background(), &store.Ingest{RawBody: ev, Records: []*store.Record{rec}}, true); err != nil {
		t.Fatal(err)
	}
}

func recorder(t *testing.T) (*tracetest.SpanRecorder, TracerProviderFunc) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, func() trace.TracerProvider { return tp }
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// names reports whether a traceparent header names span.
func names(traceparent string, span sdktrace.ReadOnlySpan) bool {
	sc := span.SpanContext()
	return strings.HasPrefix(traceparent, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-")
}

// Each attempt of a traced event is a span of the ingest span's trace, a
// child of it, and the backend is told the attempt's span; a replay is one
// more.
func TestTraceAttemptsAndReplay(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, func(_ hit, n int) (int, map[string]string) {
		if n == 1 {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	spans, tp := recorder(t)
	cfg := fast(t, st, be.srv.URL+"/hooks?token=upstream-secret")
	cfg.Tracing = tp
	e := start(t, cfg)
	insertTraced(t, st, "evt-1", ingestParent, ingestState)
	e.Notify()
	waitStatus(t, st, "evt-1", store.StatusDelivered)

	if _, err := e.Replay(context.Background(), testSource, "evt-1", testSource, false); err != nil {
		t.Fatal(err)
	}
	ended := spans.Ended()
	if len(ended) != 3 {
		t.Fatalf("%d spans, want two attempts and a replay", len(ended))
	}
	hits := be.hitsFor("evt-1")
	wantNames := []string{SpanDeliver, SpanDeliver, SpanReplay}
	wantNext := []string{"retrying", "delivered", ""}
	for i, s := range ended {
		if s.Name() != wantNames[i] {
			t.Errorf("span %d named %s, want %s", i, s.Name(), wantNames[i])
		}
		if s.SpanContext().TraceID().String() != ingestTraceID || s.Parent().SpanID().String() != ingestSpanID {
			t.Errorf("%s: trace %s parent %s, want a child of the ingest span", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID())
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v", s.Name(), s.SpanKind())
		}
		a := attrs(s)
		want := map[string]string{"webhook.source": testSource, "webhook.provider": "usaepay",
			"webhook.event.id": "evt-1", "webhook.event.type": "transaction.sale.success",
			"webhook.destination": testSource, "webhook.attempt": []string{"1", "2", "3"}[i],
			"http.response.status_code": []string{"503", "200", "200"}[i], "webhook.delivery.next": wantNext[i]}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("%s %d: %s = %q, want %q", s.Name(), i, k, a[k], v)
			}
		}
		for k, v := range a {
			if strings.Contains(v, "upstream-secret") || strings.Contains(v, "specversion") {
				t.Errorf("%s: attribute %s holds a secret or the body: %q", s.Name(), k, v)
			}
		}
		if !names(hits[i].header.Get("Traceparent"), s) {
			t.Errorf("request %d: traceparent %q does not name its span %v", i, hits[i].header.Get("Traceparent"), s.SpanContext())
		}
		if got := hits[i].header.Get("Tracestate"); got != ingestState {
			t.Errorf("request %d: tracestate %q, want the stored %q", i, got, ingestState)
		}
	}
	if ended[0].Status().Description != "backend answered 503" || ended[1].Status().Code.String() != "Unset" {
		t.Errorf("statuses %v %v", ended[0].Status(), ended[1].Status())
	}
}

// An event stored by an untraced request gets no span and no trace
// headers, and neither does any event while the engine has no provider.
func TestUntracedAttemptHasNoTraceHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent string
		traced bool
	}{{"untraced event", "", true}, {"no provider", ingestParent, false}} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			be := newBackend(t, nil)
			spans, tp := recorder(t)
			cfg := fast(t, st, be.srv.URL)
			cfg.Tracing = tp
			if !tc.traced {
				cfg.Tracing = func() trace.TracerProvider { return nil }
			}
			e := start(t, cfg)
			insertTraced(t, st, "evt-1", tc.parent, "")
			e.Notify()
			waitStatus(t, st, "evt-1", store.StatusDelivered)
			h := be.hitsFor("evt-1")[0].header
			if h.Get("Traceparent") != "" || h.Get("Tracestate") != "" || len(spans.Ended()) != 0 {
				t.Errorf("traceparent %q tracestate %q, %d spans", h.Get("Traceparent"), h.Get("Tracestate"), len(spans.Ended()))
			}
		})
	}
}
