package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// otlpReceiver is an OTLP/HTTP trace collector: Caddy's tracing exports
// there with the exporter the standard OTEL_* variables configure.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rcv := &otlpReceiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &req)
		}
		if err != nil {
			t.Errorf("OTLP export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rcv.add(&req)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

func (rcv *otlpReceiver) add(req *collectortrace.ExportTraceServiceRequest) {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			rcv.spans = append(rcv.spans, ss.Spans...)
		}
	}
}

// env points Caddy's exporter at the receiver, exporting every 50ms.
func (rcv *otlpReceiver) env() []string {
	return []string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_SERVICE_NAME=webhook-gateway-test",
	}
}

// grpcTraceService is the collector's TraceService over gRPC, for an
// exporter set to OTEL_EXPORTER_OTLP_PROTOCOL=grpc.
type grpcTraceService struct {
	collectortrace.UnimplementedTraceServiceServer
	rcv *otlpReceiver
}

func (g grpcTraceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	g.rcv.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// newGRPCReceiver is an OTLP/gRPC trace collector on a loopback port; it
// returns the receiver and the exporter's environment.
func newGRPCReceiver(t *testing.T) (*otlpReceiver, []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &otlpReceiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, grpcTraceService{rcv: rcv})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return rcv, []string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + l.Addr().String(),
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_BSP_SCHEDULE_DELAY=50",
	}
}

func (rcv *otlpReceiver) all() []*tracepb.Span {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]*tracepb.Span(nil), rcv.spans...)
}

// trace returns the spans of one trace.
func (rcv *otlpReceiver) trace(traceID string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range rcv.all() {
		if hex.EncodeToString(s.TraceId) == traceID {
			out = append(out, s)
		}
	}
	return out
}

// waitSpan waits for a span named name with the attribute key equal to
// value, and returns it.
func (rcv *otlpReceiver) waitSpan(t *testing.T, name, key, value string) *tracepb.Span {
	t.Helper()
	var found *tracepb.Span
	testwait.For(t, "span "+name+" with "+key+"="+value, func() bool {
		for _, s := range rcv.all() {
			if s.Name == name && attr(s, key) == value {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyString(kv.Value)
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.Values))
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, anyString(e))
		}
		return "[" + strings.Join(parts, " ") + "]"
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	}
	return v.String()
}

func spanID(s *tracepb.Span) string   { return hex.EncodeToString(s.SpanId) }
func parentID(s *tracepb.Span) string { return hex.EncodeToString(s.ParentSpanId) }
func traceID(s *tracepb.Span) string  { return hex.EncodeToString(s.TraceId) }

// logTree prints a trace as an indented tree: each span with its duration,
// status and attributes, children in start order.
func logTree(t *testing.T, title string, spans []*tracepb.Span) {
	t.Helper()
	children := map[string][]*tracepb.Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[spanID(s)] = true
	}
	var roots []*tracepb.Span
	for _, s := range spans {
		if ids[parentID(s)] {
			children[parentID(s)] = append(children[parentID(s)], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", title)
	var walk func(s *tracepb.Span, depth int)
	walk = func(s *tracepb.Span, depth int) {
		d := float64(s.EndTimeUnixNano-s.StartTimeUnixNano) / 1e6
		fmt.Fprintf(&b, "%s%s  %.2fms", strings.Repeat("  ", depth), s.Name, d)
		if s.Status != nil && s.Status.Code == tracepb.Status_STATUS_CODE_ERROR {
			fmt.Fprintf(&b, "  ERROR %q", s.Status.Message)
		}
		keys := make([]string, 0, len(s.Attributes))
		for _, kv := range s.Attributes {
			if strings.HasPrefix(kv.Key, "webhook.") || kv.Key == "http.response.status_code" {
				keys = append(keys, kv.Key+"="+anyString(kv.Value))
			}
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			fmt.Fprintf(&b, "  {%s}", strings.Join(keys, " "))
		}
		for _, l := range s.Links {
			fmt.Fprintf(&b, "  link→%s/%s", hex.EncodeToString(l.TraceId), hex.EncodeToString(l.SpanId))
		}
		b.WriteByte('\n')
		kids := children[spanID(s)]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTimeUnixNano < kids[j].StartTimeUnixNano })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 1)
	}
	t.Log(b.String())
}

// tracingSite has two sync payment routes under Caddy's tracing, one
// trusting the provider's traceparent, and a path-secret route.
func tracingSite(be *backend) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		tracing {
			span ingress
		}
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY}
		}
		reverse_proxy ` + be.host() + `
	}
	route /hooks/trusted {
		tracing {
			span ingress
		}
		webhook_gateway usaepay {
			source /usaepay-trusted
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			trust_traceparent
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY}
		}
		reverse_proxy ` + be.host() + `
	}
	route /hooks/sublytics/* {
		tracing {
			span ingress
		}
		webhook_gateway sublytics {
			store_dir {{DIR}}/store
			max_event_age off
			deliver sync
			auth path_secret {env.TEST_SUBLYTICS_SECRET}
		}
		reverse_proxy ` + be.host() + `
	}
}
`
}

// backendTraceparent is the traceparent the backend got with event id.
func backendTraceparent(t *testing.T, be *backend, id string) (traceID, parent string) {
	t.Helper()
	for _, r := range be.received() {
		if r.Event["id"] == id {
			p := strings.Split(r.Header.Get("Traceparent"), "-")
			if len(p) != 4 {
				t.Fatalf("backend got traceparent %q", r.Header.Get("Traceparent"))
			}
			return p[1], p[2]
		}
	}
	t.Fatalf("backend never got %s", id)
	return "", ""
}

func TestTracingSyncEventIsOneTrace(t *testing.T) {
	be := newBackend(t)
	rcv := newOTLPReceiver(t)
	gw := testcaddy.New(t, append(gatewayEnv, rcv.env()...)...)
	gw.Start(tracingSite(be))

	const providerTrace = "0af7651916cd43dd8448eb211c80319c"
	providerParent := "00-" + providerTrace + "-b7ad6b7169203331-01"
	var secrets []string
	send := func(path string, body []byte, header http.Header) {
		t.Helper()
		for _, name := range []string{"Authorization", "X-Signature"} {
			secrets = append(secrets, header.Values(name)...)
		}
		code, answer := post(t, gw.BaseURL()+path, body, header)
		if code != http.StatusOK || answer["status"] != "delivered" {
			t.Fatalf("%s: %d %v", path, code, answer)
		}
	}

	// A payment event without a traceparent: Caddy's request span begins
	// the trace, the gateway's spans are its children, the backend's
	// traceparent names the forward span.
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
	send("/hooks/usaepay", body, usaepayHeaders(body))
	ingest := rcv.waitSpan(t, "webhook.ingest", "webhook.event.id", id)
	tid := traceID(ingest)
	var forward *tracepb.Span
	testwait.For(t, "the whole trace", func() bool {
		names := map[string]int{}
		for _, s := range rcv.trace(tid) {
			names[s.Name]++
		}
		return names["ingress"] == 1 && names["webhook.verify"] == 2 && names["webhook.read_body"] == 1 &&
			names["webhook.normalize"] == 1 && names["webhook.store"] == 1 && names["webhook.forward"] == 1
	})
	spans := rcv.trace(tid)
	logTree(t, "sync payment event:", spans)
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	if request := byName["ingress"]; parentID(ingest) != spanID(request) || len(request.ParentSpanId) != 0 {
		t.Errorf("ingest span's parent %s, want the request span %s, a root", parentID(ingest), spanID(request))
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "webhook.") && s.Name != "webhook.ingest" && parentID(s) != spanID(ingest) {
			t.Errorf("%s is not a child of the ingest span", s.Name)
		}
	}
	forward = byName["webhook.forward"]
	if attr(forward, "http.response.status_code") != "200" || attr(forward, "webhook.event.id") != id {
		t.Errorf("forward span attributes %v", forward.Attributes)
	}
	if bt, bp := backendTraceparent(t, be, id); bt != tid || bp != spanID(forward) {
		t.Errorf("backend's traceparent %s/%s, want %s/%s (the forward span)", bt, bp, tid, spanID(forward))
	}

	// A provider's traceparent: Caddy's request span continues it, the
	// gateway's spans start a trace of their own linked to it, which the
	// backend joins.
	body = []byte(strings.Replace(string(body), id[:8], "11111111", 1))
	untrusted := "11111111" + id[8:]
	header := usaepayHeaders(body)
	header.Set("Traceparent", providerParent)
	send("/hooks/usaepay", body, header)
	ingest = rcv.waitSpan(t, "webhook.ingest", "webhook.event.id", untrusted)
	var request *tracepb.Span
	testwait.For(t, "Caddy's request span in the provider's trace", func() bool {
		for _, s := range rcv.trace(providerTrace) {
			if s.Name == "ingress" {
				request = s
				return true
			}
		}
		return false
	})
	if traceID(ingest) == providerTrace || len(ingest.ParentSpanId) != 0 {
		t.Errorf("untrusted: ingest span in trace %s with parent %s, want a new root", traceID(ingest), parentID(ingest))
	}
	if len(ingest.Links) != 1 || hex.EncodeToString(ingest.Links[0].SpanId) != spanID(request) {
		t.Errorf("untrusted: ingest span links %v, want the request span", ingest.Links)
	}
	if bt, _ := backendTraceparent(t, be, untrusted); bt != traceID(ingest) {
		t.Errorf("backend's trace %s, want the gateway's %s", bt, traceID(ingest))
	}
	logTree(t, "provider traceparent, not trusted (the gateway's trace):", rcv.trace(traceID(ingest)))

	// The same on the route that trusts it: one trace, the provider's.
	body = []byte(strings.Replace(string(body), untrusted[:8], "22222222", 1))
	trusted := "22222222" + id[8:]
	header = usaepayHeaders(body)
	header.Set("Traceparent", providerParent)
	send("/hooks/trusted", body, header)
	ingest = rcv.waitSpan(t, "webhook.ingest", "webhook.event.id", trusted)
	if traceID(ingest) != providerTrace {
		t.Errorf("trusted: ingest span in trace %s, want the provider's", traceID(ingest))
	}
	var trustedRequest *tracepb.Span
	for _, s := range rcv.trace(providerTrace) {
		if s.Name == "ingress" && spanID(s) == parentID(ingest) {
			trustedRequest = s
		}
	}
	if trustedRequest == nil {
		t.Errorf("trusted: ingest span's parent %s is not a request span", parentID(ingest))
	}
	if bt, _ := backendTraceparent(t, be, trusted); bt != providerTrace {
		t.Errorf("trusted: backend's trace %s, want the provider's", bt)
	}

	// A path secret, which Caddy's own span would record in url.path.
	sub := fixture(t, "sublytics", fixtures(t, "sublytics")[0])
	send("/hooks/sublytics/"+sublyticsToken, sub, nil)
	subIngest := rcv.waitSpan(t, "webhook.ingest", "webhook.source", "/sublytics")
	testwait.For(t, "the sublytics request span", func() bool {
		for _, s := range rcv.trace(traceID(subIngest)) {
			if s.Name == "ingress" {
				return true
			}
		}
		return false
	})
	logTree(t, "path-secret route:", rcv.trace(traceID(subIngest)))
	secrets = append(secrets, sublyticsToken)

	// A rejected signature: the ingest span and the body's check fail with
	// the answer's words.
	bad := usaepayHeaders(body)
	bad.Set("X-Signature", sign("not-the-key", body))
	secrets = append(secrets, bad.Get("X-Signature"))
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, bad); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %v", code, answer)
	}
	rejected := rcv.waitSpan(t, "webhook.ingest", "webhook.outcome", "unauthorized")
	testwait.For(t, "the rejected request's verify spans", func() bool {
		n := 0
		for _, s := range rcv.trace(traceID(rejected)) {
			if s.Name == "webhook.verify" {
				n++
			}
		}
		return n == 2
	})
	logTree(t, "rejected signature:", rcv.trace(traceID(rejected)))
	if rejected.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || rejected.Status.GetMessage() != "unauthorized" {
		t.Errorf("rejected: ingest status %v", rejected.Status)
	}
	for _, s := range rcv.trace(traceID(rejected)) {
		if s.Name == "webhook.verify" && attr(s, "webhook.verify.stage") == "body" && s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("rejected: body check's span status %v", s.Status)
		}
	}

	// Nothing secret and no body in any attribute of any span, Caddy's
	// included.
	secrets = append(secrets, basicPass, sigKey, string(body), string(sub), `"authcode"`, "538228")
	all := rcv.all()
	for _, s := range all {
		values := []string{s.Name}
		for _, kv := range s.Attributes {
			values = append(values, anyString(kv.Value))
		}
		for _, v := range values {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %s holds %q in %q", s.Name, secret, v)
				}
			}
			if bytes.Contains([]byte(v), []byte("event_body")) {
				t.Errorf("span %s holds a body: %q", s.Name, v)
			}
		}
	}
	t.Logf("%d spans searched for %d secrets", len(all), len(secrets))
}

// TestTracingAsyncOverGRPC: an async route's trace, exported over OTLP/gRPC,
// holds the durable store write and no forward (its delivery is a span of
// its own, see tracing_async_test.go); the answer is a 202.
func TestTracingAsyncOverGRPC(t *testing.T) {
	be := newBackend(t)
	rcv, env := newGRPCReceiver(t)
	gw := testcaddy.New(t, append(gatewayEnv, env...)...)
	gw.Start(`http://127.0.0.1:{{PORT}} {
	route /hooks/openloyalty {
		tracing
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			auth header ` + loyaltyHeader + ` {env.TEST_LOYALTY_TOKEN}
			upstream ` + be.URL + `
		}
	}
}
`)
	body := fixture(t, "openloyalty", fixtures(t, "openloyalty")[0])
	code, answer := post(t, gw.BaseURL()+"/hooks/openloyalty", body, loyaltyHeaders())
	if code != http.StatusAccepted {
		t.Fatalf("answer %d %v", code, answer)
	}
	ingest := rcv.waitSpan(t, "webhook.ingest", "webhook.outcome", "accepted")
	var spans []*tracepb.Span
	testwait.For(t, "the async trace", func() bool {
		spans = rcv.trace(traceID(ingest))
		names := map[string]bool{}
		for _, s := range spans {
			names[s.Name] = true
		}
		return names["handler"] && names["webhook.store"] && names["webhook.normalize"]
	})
	logTree(t, "async loyalty event over gRPC:", spans)
	if attr(ingest, "webhook.mode") != "async" || attr(ingest, "http.response.status_code") != "202" {
		t.Errorf("ingest attributes %v", ingest.Attributes)
	}
	for _, s := range spans {
		if s.Name == "webhook.forward" {
			t.Error("an async request has a forward span")
		}
		for _, kv := range s.Attributes {
			if strings.Contains(anyString(kv.Value), loyaltyToken) {
				t.Errorf("span %s holds the route's token in %s", s.Name, kv.Key)
			}
		}
	}
}
