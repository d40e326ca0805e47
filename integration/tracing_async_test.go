package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// tracedBackend is a backend with OpenTelemetry as far as this test needs:
// for each request it reports a server span ("backend.receive") to the
// receiver, a child of the span its traceparent names. It refuses the
// first request of each event with a 503.
type tracedBackend struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
}

func newTracedBackend(t *testing.T, rcv *otlpReceiver) *tracedBackend {
	b := &tracedBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		b.mu.Lock()
		status := http.StatusOK
		if n := b.countLocked(ev["id"]); n == 0 {
			status = http.StatusServiceUnavailable
		}
		b.requests = append(b.requests, received{Status: status, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Event: ev})
		b.mu.Unlock()
		w.WriteHeader(status)
		if p := strings.Split(r.Header.Get("Traceparent"), "-"); len(p) == 4 {
			tid, _ := hex.DecodeString(p[1])
			parent, _ := hex.DecodeString(p[2])
			id := make([]byte, 8)
			_, _ = rand.Read(id)
			rcv.addSpan(&tracepb.Span{
				TraceId: tid, SpanId: id, ParentSpanId: parent, Name: "backend.receive",
				Kind:              tracepb.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: uint64(start.UnixNano()), EndTimeUnixNano: uint64(time.Now().UnixNano()),
			})
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// addSpan is a span reported by the test's own code.
func (rcv *otlpReceiver) addSpan(s *tracepb.Span) {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	rcv.spans = append(rcv.spans, s)
}

func (b *tracedBackend) countLocked(id any) int {
	n := 0
	for _, r := range b.requests {
		if r.Event["id"] == id {
			n++
		}
	}
	return n
}

func (b *tracedBackend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.requests...)
}

// TestTracingAsyncAttemptsAndReplay: an async event whose first delivery
// attempt fails and second succeeds is one trace: Caddy's request span,
// the gateway's ingest span and its steps, one span per attempt (children
// of the ingest span) and the backend's span under each; an operator's
// replay (from the CLI) adds one more span, and the backend's, to the same trace. Each
// request names its own attempt span in traceparent, and carries the
// ingest span in the body's distributed tracing extension. No attribute
// of any span holds a secret, a credential header's value or a body.
func TestTracingAsyncAttemptsAndReplay(t *testing.T) {
	rcv := newOTLPReceiver(t)
	be := newTracedBackend(t, rcv)
	gw := testcaddy.New(t, append(gatewayEnv, rcv.env()...)...)
	gw.Start(`http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		tracing {
			span ingress
		}
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			deliver async
			auth basic ` + basicUser + ` {env.TEST_BASIC_PASS}
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + be.URL + `/events?token=upstream-token-123
			signing_secret {env.TEST_SIGNING_SECRET}
			retry {
				attempts 5
				initial_delay 50ms
				max_delay 100ms
			}
		}
	}
}
`)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
	header := usaepayHeaders(body)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, header); code != http.StatusAccepted {
		t.Fatalf("answer %d %v", code, answer)
	}
	ingest := rcv.waitSpan(t, "webhook.ingest", "webhook.event.id", id)
	tid := traceID(ingest)
	count := func(spans []*tracepb.Span) map[string]int {
		names := map[string]int{}
		for _, s := range spans {
			names[s.Name]++
		}
		return names
	}
	testwait.For(t, "two attempts and the backend's spans in the ingest's trace", func() bool {
		n := count(rcv.trace(tid))
		return n["ingress"] == 1 && n["webhook.store"] == 1 && n["webhook.deliver"] == 2 && n["backend.receive"] == 2
	})

	// The operator finds the trace by the id show prints, and replays
	// from the CLI (through the admin API).
	cli := func(command string, args ...string) string {
		t.Helper()
		args = append([]string{"webhooks", command, "--address", fmt.Sprintf("127.0.0.1:%d", gw.Admin)}, args...)
		cmd := exec.Command(testcaddy.Binary(t), args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("caddy webhooks %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := cli("show", "/usaepay", id); !regexp.MustCompile(`\n +trace +` + tid + `\n`).MatchString(out) {
		t.Errorf("show does not print the trace id %s:\n%s", tid, out)
	}
	cli("replay", "/usaepay", id)
	testwait.For(t, "the replay's span and the backend's in the same trace", func() bool {
		n := count(rcv.trace(tid))
		return n["webhook.replay"] == 1 && n["backend.receive"] == 3
	})
	spans := rcv.trace(tid)
	logTree(t, "async payment event, attempts 503 then 200, then a replay:", spans)

	// Every delivery span is a child of the ingest span, numbered in
	// order, and the backend's span is a child of the span that sent it.
	var sent []*tracepb.Span // deliveries in start order
	backendParents := map[string]bool{}
	for _, s := range spans {
		switch s.Name {
		case "webhook.deliver", "webhook.replay":
			sent = append(sent, s)
		case "backend.receive":
			backendParents[parentID(s)] = true
		}
	}
	for i := range sent {
		for j := i + 1; j < len(sent); j++ {
			if sent[j].StartTimeUnixNano < sent[i].StartTimeUnixNano {
				sent[i], sent[j] = sent[j], sent[i]
			}
		}
	}
	want := []struct{ name, attempt, status, next string }{
		{"webhook.deliver", "1", "503", "retrying"},
		{"webhook.deliver", "2", "200", "delivered"},
		{"webhook.replay", "3", "200", ""},
	}
	requests := be.received()
	if len(requests) != 3 {
		t.Fatalf("backend got %d requests, want 3", len(requests))
	}
	for i, s := range sent {
		w := want[i]
		if s.Name != w.name || parentID(s) != spanID(ingest) {
			t.Errorf("delivery %d: %s with parent %s, want %s under the ingest span %s", i+1, s.Name, parentID(s), w.name, spanID(ingest))
		}
		got := map[string]string{
			"webhook.source": attr(s, "webhook.source"), "webhook.provider": attr(s, "webhook.provider"),
			"webhook.event.id": attr(s, "webhook.event.id"), "webhook.event.type": attr(s, "webhook.event.type"),
			"webhook.destination": attr(s, "webhook.destination"), "webhook.attempt": attr(s, "webhook.attempt"),
			"http.response.status_code": attr(s, "http.response.status_code"), "webhook.delivery.next": attr(s, "webhook.delivery.next"),
		}
		wantAttrs := map[string]string{
			"webhook.source": "/usaepay", "webhook.provider": "usaepay", "webhook.event.id": id,
			"webhook.event.type": "transaction.sale.success", "webhook.destination": "/usaepay",
			"webhook.attempt": w.attempt, "http.response.status_code": w.status, "webhook.delivery.next": w.next,
		}
		for k, v := range wantAttrs {
			if got[k] != v {
				t.Errorf("%s %d: %s = %q, want %q", s.Name, i+1, k, got[k], v)
			}
		}
		if (w.status == "503") != (s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) {
			t.Errorf("%s %d: status %v", s.Name, i+1, s.Status)
		}
		if !backendParents[spanID(s)] {
			t.Errorf("%s %d: no backend span under it", s.Name, i+1)
		}
		// The request that attempt sent names it, and its body names
		// where the trace began: the ingest span.
		r := requests[i]
		if tp := r.Header.Get("Traceparent"); !strings.HasPrefix(tp, "00-"+tid+"-"+spanID(s)+"-") {
			t.Errorf("request %d: traceparent %q, want the span of %s %d", i+1, tp, s.Name, i+1)
		}
		if r.Header.Get("Webhook-Attempt") != w.attempt {
			t.Errorf("request %d: Webhook-Attempt %q", i+1, r.Header.Get("Webhook-Attempt"))
		}
		if ext, _ := r.Event["traceparent"].(string); !strings.HasPrefix(ext, "00-"+tid+"-"+spanID(ingest)+"-") {
			t.Errorf("request %d: the event's traceparent %q, want the ingest span's", i+1, ext)
		}
		if string(r.Body) != string(requests[0].Body) {
			t.Errorf("request %d: body differs from the first attempt's", i+1)
		}
	}

	// Nothing secret and no body in any span's name or attributes.
	secrets := []string{basicPass, sigKey, signingSecret, header.Get("Authorization"), header.Get("X-Signature"),
		"upstream-token-123", string(body), `"authcode"`, "538228"}
	for _, r := range requests {
		secrets = append(secrets, r.Header.Get("Webhook-Signature"), string(r.Body))
	}
	all := rcv.all()
	for _, s := range all {
		values := []string{s.Name, s.Status.GetMessage()}
		for _, kv := range s.Attributes {
			values = append(values, anyString(kv.Value))
		}
		for _, v := range values {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(v, secret) {
					t.Errorf("span %s holds %q in %q", s.Name, secret, v)
				}
			}
		}
	}
	t.Logf("%d spans searched for %d secrets", len(all), len(secrets))
}

// handoverSite is an async payment route under tracing, with
// trace_deliveries, on storeConf.
func handoverSite(upstream, storeConf string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		tracing
		webhook_gateway usaepay {
			` + storeConf + `
			max_event_age off
			deliver async
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + upstream + `
			trace_deliveries
			retry {
				` + fastRetry + `
			}
		}
	}
}
`
}

// postTraced posts the payment fixture, waits for its ingest span and its
// first (refused) attempt's span, and returns the ingest span.
func postTraced(t *testing.T, gw *testcaddy.Instance, rcv *otlpReceiver) (ingest *tracepb.Span, id string) {
	t.Helper()
	body := fixture(t, "usaepay", "transaction.sale.success")
	id = "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
	header := http.Header{}
	header.Set("X-Signature", sign(sigKey, body))
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, header); code != http.StatusAccepted {
		t.Fatalf("answer %d %v", code, answer)
	}
	ingest = rcv.waitSpan(t, "webhook.ingest", "webhook.event.id", id)
	testwait.For(t, "a refused attempt's span", func() bool {
		for _, s := range rcv.trace(traceID(ingest)) {
			if s.Name == "webhook.deliver" && attr(s, "http.response.status_code") == "503" {
				return true
			}
		}
		return false
	})
	return ingest, id
}

// waitDelivered waits for the span of the attempt the backend took, in the
// ingest span's trace and under it, and checks that the backend's
// traceparent named it.
func waitDelivered(t *testing.T, rcv *otlpReceiver, be *backend, ingest *tracepb.Span, id string) {
	t.Helper()
	var delivered *tracepb.Span
	testwait.For(t, "the delivered attempt's span in the ingest's trace", func() bool {
		for _, s := range rcv.trace(traceID(ingest)) {
			if s.Name == "webhook.deliver" && attr(s, "webhook.delivery.next") == "delivered" {
				delivered = s
				return true
			}
		}
		return false
	})
	logTree(t, "the event's trace:", rcv.trace(traceID(ingest)))
	if parentID(delivered) != spanID(ingest) {
		t.Errorf("delivered attempt's parent %s, want the ingest span %s", parentID(delivered), spanID(ingest))
	}
	var last received
	for _, r := range be.received() {
		if r.Event["id"] == id && r.Status == http.StatusOK {
			last = r
		}
	}
	if tp := last.Header.Get("Traceparent"); !strings.HasPrefix(tp, "00-"+traceID(ingest)+"-"+spanID(delivered)+"-") {
		t.Errorf("the delivered request's traceparent %q does not name its attempt span %s", tp, spanID(delivered))
	}
}

// TestTracingDeliveryAfterRestart: a gateway restarted with a retry
// pending traces that retry in the event's trace although it has served
// no traced request since it started (trace_deliveries).
func TestTracingDeliveryAfterRestart(t *testing.T) {
	rcv := newOTLPReceiver(t)
	be := newBackend(t)
	be.setStatus(http.StatusServiceUnavailable)
	gw := testcaddy.New(t, append(gatewayEnv, rcv.env()...)...)
	site := handoverSite(be.URL, "store_dir {{DIR}}/store")
	gw.Start(site)
	ingest, id := postTraced(t, gw, rcv)
	gw.Stop()
	be.setStatus(http.StatusOK)
	gw.Start(site)
	waitDelivered(t, rcv, be, ingest, id)
}

// TestTracingDeliveryOnAnotherGateway: an event received by one gateway and
// delivered by another sharing the PostgreSQL store, which never served a
// request, is traced in the trace the first began.
func TestTracingDeliveryOnAnotherGateway(t *testing.T) {
	dsn := pgtest.DSN(t)
	rcv := newOTLPReceiver(t)
	be := newBackend(t)
	be.setStatus(http.StatusServiceUnavailable)
	site := handoverSite(be.URL, "store postgres {env.TEST_PG_DSN} {\n\t\t\t\tschema "+pgtest.Schema(t, dsn)+"\n\t\t\t}")
	env := append(append(append([]string(nil), gatewayEnv...), rcv.env()...), "TEST_PG_DSN="+dsn)
	receiving, delivering := testcaddy.New(t, env...), testcaddy.New(t, env...)
	receiving.Start(site)
	delivering.Start(site)
	ingest, id := postTraced(t, receiving, rcv)
	receiving.Stop()
	be.setStatus(http.StatusOK)
	waitDelivered(t, rcv, be, ingest, id)
}
