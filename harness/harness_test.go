package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/harness/report"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

var whsec = "whsec_" + base64.StdEncoding.EncodeToString([]byte("harness-test-signing-secret-0123"))

// fakeGateway is just enough of a gateway to exercise the harness without
// Caddy: normalize, dedup in memory (a derived id's content key only for
// window), answer 202 or 200 duplicate, deliver asynchronously with
// retries. It can be told to lose or double events so the report's
// detection is tested too.
type fakeGateway struct {
	sinkURL atomic.Pointer[string]
	secret  string
	window  time.Duration

	mu       sync.Mutex
	seen     map[sim.Key]bool
	held     map[sim.Key]time.Time // content key -> end of its window
	accepted int

	// loseEvery drops every n-th accepted event; doubleEvery delivers every
	// n-th twice.
	loseEvery, doubleEvery int

	wg sync.WaitGroup
}

func newFakeGateway(t *testing.T, secret string) (*fakeGateway, *httptest.Server) {
	g := &fakeGateway{seen: map[sim.Key]bool{}, held: map[sim.Key]time.Time{}, secret: secret, window: sim.DefaultDedupWindow}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		g.wg.Wait()
	})
	return g, srv
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	provider := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var (
		events []schemas.Event
		ckeys  []string
	)
	_, err := normalize.Each(body, normalize.Options{Provider: provider, ReceivedAt: now}, func(ev *schemas.Event, key string) error {
		e := *ev
		e.Data = append([]byte(nil), ev.Data...)
		events = append(events, e)
		ckeys = append(ckeys, key)
		return nil
	})
	if err != nil {
		http.Error(w, `{"error":"invalid"}`, http.StatusBadRequest)
		return
	}
	var fresh []schemas.Event
	g.mu.Lock()
	for i, e := range events {
		k := sim.Key{Source: e.Source, ID: e.ID}
		if ckeys[i] != "" && g.window > 0 {
			ck := sim.Key{Source: e.Source, ID: ckeys[i], Content: true}
			if now.Before(g.held[ck]) {
				continue
			}
			g.held[ck] = now.Add(g.window)
		}
		if g.seen[k] {
			continue
		}
		g.seen[k] = true
		g.accepted++
		n := g.accepted
		if g.loseEvery > 0 && n%g.loseEvery == 0 {
			continue
		}
		fresh = append(fresh, e)
		if g.doubleEvery > 0 && n%g.doubleEvery == 0 {
			fresh = append(fresh, e)
		}
	}
	g.mu.Unlock()
	for _, e := range fresh {
		g.wg.Go(func() { g.deliver(e) })
	}
	if len(fresh) == 0 && len(events) > 0 && g.loseEvery == 0 {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"status":"duplicate"}`)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"accepted"}`)
}

func (g *fakeGateway) deliver(e schemas.Event) {
	body, _ := json.Marshal(e)
	for attempt := 1; attempt <= 50; attempt++ {
		u := g.sinkURL.Load()
		if u == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, *u+"/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", schemas.ContentType)
		req.Header.Set("Idempotency-Key", e.ID)
		req.Header.Set("Webhook-Attempt", strconv.Itoa(attempt))
		if g.secret != "" {
			wh, _ := standardwebhooks.NewWebhook(g.secret)
			now := time.Now()
			sig, _ := wh.Sign(e.ID, now, body)
			req.Header.Set("webhook-id", e.ID)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			req.Header.Set("webhook-signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allProviders() map[string]sim.ProviderConfig {
	return map[string]sim.ProviderConfig{sim.OpenLoyalty: {}, sim.Sublytics: {}, sim.USAePay: {}}
}

func TestRunAgainstHealthyGateway(t *testing.T) {
	g, gw := newFakeGateway(t, whsec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Run(ctx, Scenario{
		Gateway: gw.URL,
		Sim: sim.Config{
			Providers: allProviders(), Count: 90, Concurrency: 8,
			DuplicateShare: 0.2, RedeliveryShare: 0.2, RedeliveryDelay: 30 * time.Millisecond,
			BurstSize: 10, BurstPause: 10 * time.Millisecond,
			Gen: sim.GenOptions{BatchShare: 1},
		},
		Sink: sink.Config{Secrets: []string{whsec}, Faults: sink.Faults{FailShare: 0.3}},
		SinkReady: func(_ context.Context, u string) error {
			if !strings.HasPrefix(u, "http://127.0.0.1:") {
				t.Errorf("sink URL %s is not loopback", u)
			}
			g.sinkURL.Store(&u)
			return nil
		},
		Wait: report.WaitOptions{Timeout: 20 * time.Second, Settle: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, r.Table())
	}
	if !r.OK() || r.Lost != 0 || r.Doubled != 0 || r.Unique != 90 || r.Delivered != r.Expected ||
		r.Duplicates == 0 || r.Redeliveries == 0 || r.DuplicateAnswers == 0 || r.SinkFaults == 0 ||
		r.LatencyN != r.Delivered || r.Expected <= 90 {
		t.Fatalf("report:\n%s", r.Table())
	}
	for _, p := range sim.Providers() {
		if c := r.Providers[p]; c == nil || c.Unique != 30 || c.Lost != 0 {
			t.Fatalf("%s: %+v", p, c)
		}
	}
}

func TestRunDetectsLostAndDoubled(t *testing.T) {
	g, gw := newFakeGateway(t, "")
	g.loseEvery, g.doubleEvery = 7, 5
	r, err := Run(context.Background(), Scenario{
		Gateway: gw.URL,
		Sim:     sim.Config{Providers: allProviders(), Count: 40},
		SinkReady: func(_ context.Context, u string) error {
			g.sinkURL.Store(&u)
			return nil
		},
		Wait: report.WaitOptions{Timeout: 500 * time.Millisecond, Settle: 50 * time.Millisecond},
	})
	if !errors.Is(err, report.ErrIncomplete) {
		t.Fatalf("err %v", err)
	}
	if r.Lost == 0 || r.Doubled == 0 || r.OK() || len(r.LostKeys) == 0 {
		t.Fatalf("report:\n%s", r.Table())
	}
	if !strings.Contains(r.Table(), "PROBLEMS") {
		t.Fatal(r.Table())
	}
}

func TestRunUsesExistingSinkAndRejectsBadConfig(t *testing.T) {
	if _, err := Run(context.Background(), Scenario{}); err == nil {
		t.Fatal("empty scenario accepted")
	}
	sk, err := NewSink(sink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sink.Listen("", sk)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	g, gw := newFakeGateway(t, "")
	g.sinkURL.Store(&srv.URL)
	r, err := Run(context.Background(), Scenario{
		Gateway: gw.URL, UseSink: srv,
		Sim: sim.Config{Providers: map[string]sim.ProviderConfig{sim.USAePay: {}}, Count: 5},
	})
	if err != nil || !r.OK() || r.Delivered != 5 {
		t.Fatalf("%v\n%s", err, r.Table())
	}
	if len(sk.Deliveries()) != 5 {
		t.Fatal("existing sink not used")
	}
}

// lineWriter hands the first line written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan string
	once  sync.Once
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if line, err := bufio.NewReader(bytes.NewReader(l.buf.Bytes())).ReadString('\n'); err == nil {
		l.once.Do(func() { l.first <- line })
	}
	return len(p), nil
}

func (l *lineWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestCommandsEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The sink command runs until its context ends.
	sinkCtx, stopSink := context.WithCancel(ctx)
	sinkOut := &lineWriter{first: make(chan string, 1)}
	sc := SinkCommand()
	sc.SetArgs([]string{"--listen", "127.0.0.1:0", "--secret", whsec, "--stats-every", "0", "--fail-share", "0.2"})
	sc.SetOut(sinkOut)
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sc.ExecuteContext(sinkCtx) }()
	var sinkURL string
	select {
	case line := <-sinkOut.first:
		f := strings.Fields(line)
		sinkURL = f[3]
	case err := <-sinkDone:
		t.Fatalf("sink exited: %v", err)
	}

	g, gw := newFakeGateway(t, whsec)
	g.sinkURL.Store(&sinkURL)

	var out bytes.Buffer
	ec := EmitCommand()
	ec.SetArgs([]string{
		"--target", gw.URL, "--count", "30", "--duplicates", "0.3", "--redeliveries", "0.3",
		"--sink-url", sinkURL, "--json", "--check", "--burst-pause", "10ms", "--tz", "America/New_York",
		"--type", "usaepay=transaction.sale.success", "--weight", "usaepay=2",
	})
	ec.SetOut(&out)
	if err := ec.ExecuteContext(ctx); err != nil {
		t.Fatalf("emit: %v\n%s", err, out.String())
	}
	var r report.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !r.OK() || r.Unique != 30 || r.Providers[sim.USAePay].Unique != 15 || r.Delivered != r.Expected || !r.HasSink {
		t.Fatalf("report %s", out.String())
	}

	stopSink()
	if err := <-sinkDone; err != nil {
		t.Fatalf("sink: %v", err)
	}
	if !strings.Contains(sinkOut.String(), "delivered=") {
		t.Fatalf("sink printed no stats: %s", sinkOut.String())
	}
}

func TestEmitInProcessSinkTable(t *testing.T) {
	// Reserve a port so the fake gateway knows where the emit command's
	// sink will listen, as a real gateway's config would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g, gw := newFakeGateway(t, "")
	u := "http://" + addr
	g.sinkURL.Store(&u)

	var out, errOut bytes.Buffer
	ec := EmitCommand()
	ec.SetArgs([]string{"--target", gw.URL, "--count", "12", "--sink-listen", addr, "--providers", "openloyalty,usaepay", "--settle", "0s"})
	ec.SetOut(&out)
	ec.SetErr(&errOut)
	if err := ec.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("emit: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "OK: every acknowledged event delivered exactly once") ||
		strings.Contains(out.String(), "sublytics") || !strings.Contains(errOut.String(), "sink listening on") {
		t.Fatalf("output:\n%s\n%s", out.String(), errOut.String())
	}
}

func TestEmitFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--providers", "paypal"},
		{"--path", "paypal=/x"},
		{"--weight", "usaepay=-1"},
		{"--type", "usaepay"},
		{"--type", "usaepay=nope"},
		{"--tz", "Mars/Olympus"},
		{"--sink-listen", "127.0.0.1:0", "--sink-url", "http://127.0.0.1:1"},
		{"--sink-listen", "127.0.0.1:0", "--sink-fail-share", "3"},
	} {
		ec := EmitCommand()
		ec.SetArgs(append([]string{"--target", "http://127.0.0.1:1", "--count", "1"}, args...))
		ec.SetOut(io.Discard)
		ec.SetErr(io.Discard)
		if err := ec.Execute(); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestEmitWithoutSinkReportsAnswers(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
	}))
	defer gw.Close()
	var out bytes.Buffer
	ec := EmitCommand()
	ec.SetArgs([]string{"--target", gw.URL, "--count", "3", "--providers", "sublytics", "--check", "--duplicates", "0", "--redeliveries", "0"})
	ec.SetOut(&out)
	ec.SetErr(io.Discard)
	if err := ec.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no sink data") || !strings.Contains(out.String(), `gateway answered sublytics: 401 x3: {"error":"unauthorized"}`) {
		t.Fatal(out.String())
	}
}

// TestRunLoyaltyByContentKey drives loyalty traffic whose bodies repeat:
// pooled customers, duplicates, redeliveries and real repeats after a
// short dedup window. The gateway that honours the window loses and
// doubles nothing; one that ignores it doubles the in-window copies, and
// the report says so.
func TestRunLoyaltyByContentKey(t *testing.T) {
	const window = 150 * time.Millisecond
	loyalty := sim.ProviderConfig{DedupWindow: window, Types: sim.RepeatTypes}
	scenario := func(g *fakeGateway, gw *httptest.Server) Scenario {
		return Scenario{
			Gateway: gw.URL,
			Sim: sim.Config{
				Providers: map[string]sim.ProviderConfig{sim.OpenLoyalty: loyalty}, Count: 60, Concurrency: 4,
				DuplicateShare: 0.3, RedeliveryShare: 0.3, RedeliveryDelay: 20 * time.Millisecond, RepeatShare: 0.5,
				Gen: sim.GenOptions{Customers: 200},
			},
			SinkReady: func(_ context.Context, u string) error {
				g.sinkURL.Store(&u)
				return nil
			},
			Wait: report.WaitOptions{Timeout: 10 * time.Second, Settle: 100 * time.Millisecond},
		}
	}

	g, gw := newFakeGateway(t, "")
	g.window = window
	r, err := Run(context.Background(), scenario(g, gw))
	if err != nil || !r.OK() {
		t.Fatalf("%v\n%s", err, r.Table())
	}
	// Identical content sent about one window apart may be one event or
	// two (the report counts the second as delivered though unacked): on a
	// slow run a copy can land on either side of the edge.
	if r.Repeats == 0 || r.Duplicates == 0 || r.DuplicateAnswers == 0 || r.Delivered != r.AckedEvents+r.DeliveredUnacked {
		t.Fatalf("report:\n%s", r.Table())
	}

	g, gw = newFakeGateway(t, "")
	g.window = 0
	r, err = Run(context.Background(), scenario(g, gw))
	if err != nil || r.Doubled == 0 || r.OK() {
		t.Fatalf("a gateway without the window was not caught (%v):\n%s", err, r.Table())
	}
}

// TestNewSinkHoldsProvidersToRegistry: the JSON Schema fixes only the form
// of the provider name; the sink NewSink builds also refuses a name the
// gateway does not register.
func TestNewSinkHoldsProvidersToRegistry(t *testing.T) {
	sk, err := NewSink(sink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for provider, want := range map[string]int{normalize.USAePay: http.StatusOK, "stripe": http.StatusBadRequest} {
		body, _ := json.Marshal(map[string]any{
			"specversion": "1.0", "id": "e-" + provider, "source": "/" + provider, "type": "t",
			"time": "2021-04-07T15:14:26Z", "datacontenttype": "application/json", "data": map[string]any{},
			"provider": provider, "receivedat": "2021-04-07T15:14:27Z",
		})
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", schemas.ContentType)
		r.Header.Set("Idempotency-Key", "e-"+provider)
		w := httptest.NewRecorder()
		sk.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("provider %s: %d %s, want %d", provider, w.Code, w.Body, want)
		}
	}
}

// TestEmitProviderOptions: each provider's own flags come from its
// simulator file, keep their names and defaults, and reach its config;
// secrets fall back to their environment variables.
func TestEmitProviderOptions(t *testing.T) {
	t.Setenv(sim.EnvUSAePayPassword, "from-env")
	defaults := map[string]string{
		"loyalty-header": "", "loyalty-header-value": "", "loyalty-timeout": "1s", "batch-share": "0.2", "batch-max": "5",
		"usaepay-user": "", "usaepay-password": "", "usaepay-signature-key": "", "usaepay-max-conns": "20", "usaepay-timeout": "10s",
		"sublytics-secret-path": "",
	}
	emitFlags := EmitCommand().Flags()
	for name, def := range defaults {
		if f := emitFlags.Lookup(name); f == nil || f.DefValue != def {
			t.Errorf("emit --%s: %+v, want default %q", name, f, def)
		}
	}
	fs := pflag.NewFlagSet("emit", pflag.ContinueOnError)
	opts := providerFlags(fs)
	if len(opts) != len(defaults) {
		t.Errorf("%d provider options, want %d", len(opts), len(defaults))
	}
	if err := fs.Parse([]string{"--usaepay-user", "merchant", "--usaepay-timeout", "3s",
		"--sublytics-secret-path", "s3", "--loyalty-header", "X-Token", "--batch-share", "0"}); err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config{Providers: map[string]sim.ProviderConfig{sim.USAePay: {}, sim.Sublytics: {}}}
	if err := applyProviderOptions(&cfg, opts); err != nil {
		t.Fatal(err)
	}
	pay, sub := cfg.Providers[sim.USAePay], cfg.Providers[sim.Sublytics]
	if pay.BasicUser != "merchant" || pay.BasicPassword != "from-env" || sub.SecretPath != "s3" ||
		cfg.USAePayTimeout != 3*time.Second || cfg.USAePayMaxConns != 20 || cfg.LoyaltyTimeout != time.Second ||
		cfg.Gen.BatchShare != -1 || cfg.Gen.BatchMax != 5 {
		t.Fatalf("config %+v", cfg)
	}
	if _, ok := cfg.Providers[sim.OpenLoyalty]; ok {
		t.Fatal("an option of a provider not simulated added it")
	}

	bad := EmitCommand()
	bad.SetArgs([]string{"--target", "http://127.0.0.1:1", "--count", "1", "--usaepay-timeout", "soon"})
	bad.SetOut(io.Discard)
	bad.SetErr(io.Discard)
	if err := bad.Execute(); err == nil || !strings.Contains(err.Error(), "--usaepay-timeout soon") {
		t.Fatalf("bad option value: %v", err)
	}
}
