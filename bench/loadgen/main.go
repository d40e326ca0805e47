// Command loadgen is the HTTP load generator of the webhook gateway
// benchmark. In the closed loop (the default) each of -c workers sends one
// request at a time, for a warm-up and then a measured period; with -rate
// it is an open loop instead, sending requests on a fixed schedule and
// timing each from its scheduled time (open.go). Every request carries a distinct
// payment gateway (USAePay REST v2) event with its own event_id, signed with
// X-Signature = hex HMAC-SHA256(key, body): with a repeated id the gateway's
// dedup would answer every request after the first as a duplicate and the
// benchmark would measure the wrong path.
//
// Events are generated before the load starts (a pool sized for the run);
// the load loop only sends them. For async delivery (-drain-url) it then
// measures how long the backend takes to receive every acknowledged event.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080/hooks/usaepay -c 32 -d 10s -size 1024
//	go run ./bench/loadgen -url http://127.0.0.1:8080/hooks/usaepay -rate 1000 -c 256 -d 10s
//
// Output: a text summary on stderr and, with -json, one JSON document.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	URL          string
	Label        string
	Mode         string
	Concurrency  int
	Duration     time.Duration
	Warmup       time.Duration
	Size         int
	Key          string
	Pool         int
	MaxRate      int
	Timeout      time.Duration
	DrainURL     string
	DrainTimeout time.Duration
	// Deliveries is how many deliveries each acknowledged event makes
	// (its route's destinations); Keys how many transaction keys the
	// events are spread over.
	Deliveries int
	Keys       int
	MetricsURL string
	JSONPath   string
	Scenario   string
	Run        int
	Pids       string
	// Rate > 0 is the open loop (open.go): requests per second on a fixed
	// schedule, Concurrency then caps the requests in flight.
	Rate      float64
	LateAfter time.Duration
	// Share is the rate as a share of the proxy's measured capacity,
	// recorded in the report for the summary's targets.
	Share float64
}

func main() {
	var cfg config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/hooks/usaepay", "target URL (POST)")
	flag.StringVar(&cfg.Label, "label", "", "name of this measurement in the report")
	flag.StringVar(&cfg.Mode, "mode", "sync", "proxy, sync or async: async expects 202 and enables -drain-url")
	flag.IntVar(&cfg.Concurrency, "c", 32, "concurrent workers (closed loop: one request in flight each)")
	flag.DurationVar(&cfg.Duration, "d", 10*time.Second, "measured duration")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before the measurement starts (not reported)")
	flag.IntVar(&cfg.Size, "size", 1024, "body size in bytes")
	flag.StringVar(&cfg.Key, "key", os.Getenv("BENCH_SIG_KEY"), "HMAC-SHA256 key for X-Signature (default $BENCH_SIG_KEY)")
	flag.IntVar(&cfg.Pool, "pool", 0, "events to pre-generate (default: -max-rate × (warm-up + duration))")
	flag.IntVar(&cfg.MaxRate, "max-rate", 40000, "highest req/s the pool must cover; beyond it events are generated inline and counted")
	flag.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.StringVar(&cfg.DrainURL, "drain-url", "", "backend count URL (bench/backend's /count): after the load, wait until it has every acknowledged event")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", 120*time.Second, "bound on the drain wait")
	flag.IntVar(&cfg.Deliveries, "deliveries", 1, "deliveries per acknowledged event the drain waits for (a route fanning out to N destinations: N)")
	flag.IntVar(&cfg.Keys, "keys", 1, "distinct transaction keys (the events' subject) the events are spread over: the lanes of an ordered destination")
	flag.StringVar(&cfg.MetricsURL, "metrics-url", "", "the gateway's Prometheus metrics: after the load (and drain), report the store's batch sizes")
	flag.StringVar(&cfg.JSONPath, "json", "", "write the JSON report here (- for stdout)")
	flag.StringVar(&cfg.Scenario, "scenario", "", "scenario name recorded in the report; -summarize compares every scenario with \"a\"")
	flag.IntVar(&cfg.Run, "run", 0, "repetition number recorded in the report")
	flag.Float64Var(&cfg.Rate, "rate", 0, "open loop: send this many requests per second on a fixed schedule, latency measured from each request's scheduled time; -c then caps the requests in flight (0: closed loop)")
	flag.DurationVar(&cfg.LateAfter, "late", time.Millisecond, "open loop: a request sent this long after its scheduled time counts as late")
	flag.Float64Var(&cfg.Share, "share", 0, "open loop: the rate's share of the proxy's capacity (0.25 for 25%), recorded in the report")
	flag.StringVar(&cfg.Pids, "pids", "", "name=pid,... of local processes whose CPU time over the measured period is reported")
	summarize := flag.String("summarize", "", "instead of a load, summarize the JSON reports in this directory (medians, ratios to scenario a)")
	flag.Parse()

	if *summarize != "" {
		if err := summarizeDir(*summarize, cfg.JSONPath, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}

	if err := cfg.check(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	rep, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Fprint(os.Stdout, rep.Text())
	if cfg.JSONPath != "" {
		out, _ := json.MarshalIndent(rep, "", "  ")
		out = append(out, '\n')
		if cfg.JSONPath == "-" {
			_, err = os.Stdout.Write(out)
		} else {
			err = os.WriteFile(cfg.JSONPath, out, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	if rep.Requests == 0 || rep.Drain != nil && !rep.Drain.Complete {
		os.Exit(1)
	}
}

func (c *config) check() error {
	switch {
	case c.Concurrency < 1:
		return errors.New("-c must be at least 1")
	case c.Duration <= 0:
		return errors.New("-d must be positive")
	case c.Warmup < 0:
		return errors.New("-warmup must not be negative")
	case c.Key == "":
		return errors.New("no HMAC key: set -key or BENCH_SIG_KEY")
	case c.Mode != "proxy" && c.Mode != "sync" && c.Mode != "async":
		return fmt.Errorf("-mode %q: want proxy, sync or async", c.Mode)
	case c.DrainURL != "" && c.Mode != "async":
		return errors.New("-drain-url only applies to -mode async")
	case c.Deliveries < 1 || c.Keys < 1:
		return errors.New("-deliveries and -keys must be at least 1")
	case c.Rate < 0:
		return errors.New("-rate must not be negative")
	}
	if c.Rate > 0 {
		// The schedule says how many events the run needs.
		c.MaxRate = int(c.Rate) + 1
	}
	if c.Pool <= 0 {
		c.Pool = int(float64(c.MaxRate)*(c.Warmup+c.Duration).Seconds()) + 1
	}
	if c.Label == "" {
		c.Label = c.Mode
	}
	return nil
}

// pool hands out pre-generated events, then inline ones once it runs dry,
// so a faster-than-expected target gets unique events rather than repeats.
type pool struct {
	events []Event
	next   atomic.Int64

	mu      sync.Mutex
	gen     *Payloads
	inlined atomic.Int64
}

func (p *pool) take() Event {
	if i := p.next.Add(1) - 1; i < int64(len(p.events)) {
		return p.events[i]
	}
	p.inlined.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen.Next()
}

// worker state is per goroutine, merged after the run, so the hot loop
// takes no locks.
type worker struct {
	latencies []time.Duration
	status    map[int]int
	errs      map[string]int
	dups      int
	acked     int // 2xx over the whole run, warm-up and tail included
}

func run(ctx context.Context, cfg config) (*Report, error) {
	gen, err := NewPayloadsKeys([]byte(cfg.Key), cfg.Size, cfg.Keys)
	if err != nil {
		return nil, err
	}
	genStart := time.Now()
	p := &pool{events: make([]Event, cfg.Pool), gen: gen}
	for i := range p.events {
		p.events[i] = gen.Next()
	}
	genTime := time.Since(genStart)

	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * cfg.Concurrency,
		MaxIdleConnsPerHost: 2 * cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// Headers and a 12 KB body in one write, as a provider's client
		// would mostly manage; the 4 KB default splits it into syscalls.
		WriteBufferSize: 32 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout}
	procs, err := parsePids(cfg.Pids)
	if err != nil {
		return nil, err
	}

	var baseline int64
	if cfg.DrainURL != "" {
		if baseline, err = backendCount(ctx, cfg.DrainURL); err != nil {
			return nil, fmt.Errorf("drain URL: %w", err)
		}
	}

	runtime.GC() // the pool is garbage-free now; don't collect it mid-run
	cpu0 := cpuTime()
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	measureTo := measureFrom.Add(cfg.Duration)
	// Room for the expected samples up front: growing the slices mid-run
	// would copy them on the measured path.
	perWorker := int(float64(cfg.MaxRate)*cfg.Duration.Seconds()) / cfg.Concurrency

	load0 := loadAvg()
	samples := make(chan map[string]ProcCPU, 1)
	go func() { samples <- sampleProcs(procs, measureFrom, measureTo) }()

	rssDone := make(chan struct{})
	rss := make(chan map[string]ProcRSS, 1)
	go func() { rss <- sampleRSS(procs, rssDone) }()

	var workers []*worker
	var open *OpenLoop
	if cfg.Rate > 0 {
		ows, unqueued := runOpen(ctx, cfg, client, gen, p, start, measureFrom, measureTo)
		for _, w := range ows {
			workers = append(workers, &w.worker)
		}
		open = openSummary(cfg, ows, unqueued)
	} else {
		workers = make([]*worker, cfg.Concurrency)
		var wg sync.WaitGroup
		for i := range workers {
			w := &worker{
				latencies: make([]time.Duration, 0, min(perWorker, 1<<20)),
				status:    map[int]int{},
				errs:      map[string]int{},
			}
			workers[i] = w
			wg.Go(func() { w.loop(ctx, client, cfg.URL, gen, p, measureFrom, measureTo) })
		}
		wg.Wait()
	}
	loadEnd := time.Now()
	cpu := cpuTime() - cpu0
	close(rssDone)

	rep := newReport(cfg, workers, gen.BodySize())
	rep.Open = open
	rep.RSS = <-rss
	rep.PoolSize = len(p.events)
	rep.PoolGenSeconds = genTime.Seconds()
	rep.InlineGenerated = p.inlined.Load()
	rep.ClientCPUSeconds = cpu.Seconds()
	rep.LoadSeconds = loadEnd.Sub(start).Seconds()
	rep.Scenario, rep.Run = cfg.Scenario, cfg.Run
	rep.LoadAvg = [2]float64{load0, loadAvg()}
	rep.ServerCPU = <-samples
	for name, pc := range rep.ServerCPU {
		if rep.Requests > 0 {
			pc.MicrosPerRequest = pc.Seconds * 1e6 / float64(rep.Requests)
			rep.ServerCPU[name] = pc
		}
	}
	if rep.AckedTotal > 0 {
		rep.ClientMicrosPerRequest = rep.ClientCPUSeconds * 1e6 / float64(rep.AckedTotal)
	}

	if cfg.DrainURL != "" {
		rep.Drain = drain(ctx, cfg, baseline, int64(rep.AckedTotal*cfg.Deliveries), loadEnd)
	}
	if cfg.MetricsURL != "" {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep.Batches, err = scrapeBatches(mctx, cfg.MetricsURL)
		cancel()
		if err != nil {
			// The load's figures stand without them.
			fmt.Fprintln(os.Stderr, "loadgen: batch sizes:", err)
		}
	}
	return rep, nil
}

// loop sends requests back to back until measureTo. Only requests started
// at or after measureFrom and finished by measureTo are measured, so the
// warm-up and the requests cut by the end do not skew the figures; every
// 2xx still counts towards acked, which the drain check needs.
func (w *worker) loop(ctx context.Context, client *http.Client, url string, gen *Payloads, p *pool, measureFrom, measureTo time.Time) {
	buf := make([]byte, 4096)
	for {
		t0 := time.Now()
		if !t0.Before(measureTo) {
			return
		}
		ev := p.take()
		code, dup, err := send(ctx, client, url, gen.PrefixOf(ev), ev, buf)
		t1 := time.Now()
		if code >= 200 && code < 300 {
			w.acked++
		}
		if t0.Before(measureFrom) || t1.After(measureTo) {
			continue
		}
		if err != nil {
			w.errs[errClass(err)]++
			continue
		}
		w.status[code]++
		if dup {
			w.dups++
		}
		w.latencies = append(w.latencies, t1.Sub(t0))
	}
}

// send POSTs one event and reads the whole answer, so the connection goes
// back to the pool. It reports whether the answer says "duplicate", which
// would mean ids were reused and the run measured the dedup fast path.
func send(ctx context.Context, client *http.Client, url string, prefix []byte, ev Event, buf []byte) (int, bool, error) {
	body := func() io.ReadCloser {
		return io.NopCloser(io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(ev.Suffix)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body())
	if err != nil {
		return 0, false, err
	}
	req.ContentLength = int64(len(prefix) + len(ev.Suffix))
	// Lets the transport resend on a keep-alive connection the server
	// closed before reading the request; prefix and suffix are immutable.
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["X-Signature"] = []string{ev.Signature}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	} else if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	dup := bytes.Contains(buf[:n], []byte(`"duplicate"`))
	return resp.StatusCode, dup, err
}

func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// drain polls the backend until it has received every acknowledged event
// (its count of distinct Idempotency-Keys), measuring from the load's end.
func drain(ctx context.Context, cfg config, baseline, acked int64, loadEnd time.Time) *DrainReport {
	d := &DrainReport{Target: acked}
	if n, err := backendCount(ctx, cfg.DrainURL); err == nil {
		d.AtLoadEnd = n - baseline
	}
	deadline := loadEnd.Add(cfg.DrainTimeout)
	for {
		n, err := backendCount(ctx, cfg.DrainURL)
		now := time.Now()
		if err == nil {
			d.Received = n - baseline
			if d.Received >= acked {
				d.Complete = true
				d.Seconds = now.Sub(loadEnd).Seconds()
				d.DeliveryRate = float64(d.Received-d.AtLoadEnd) / max(d.Seconds, 1e-3)
				return d
			}
		} else {
			d.Error = err.Error()
		}
		if now.After(deadline) {
			d.Seconds = now.Sub(loadEnd).Seconds()
			d.DeliveryRate = float64(d.Received-d.AtLoadEnd) / d.Seconds
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendCount reads the "unique" field of bench/backend's /count.
func backendCount(ctx context.Context, url string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var c struct {
		Unique *int64 `json:"unique"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return 0, err
	}
	if c.Unique == nil {
		return 0, errors.New(`no "unique" count in the answer`)
	}
	return *c.Unique, nil
}

// cpuTime is this process's user plus system CPU time, reported so that the
// generator's own share of the (shared) cores is visible.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report is the JSON document of one measurement.
type Report struct {
	Label            string         `json:"label"`
	Scenario         string         `json:"scenario,omitempty"`
	Run              int            `json:"run,omitempty"`
	Mode             string         `json:"mode"`
	URL              string         `json:"url"`
	Concurrency      int            `json:"concurrency"`
	DurationSeconds  float64        `json:"duration_s"`
	WarmupSeconds    float64        `json:"warmup_s"`
	BodyBytes        int            `json:"body_bytes"`
	Requests         int            `json:"requests"`
	RPS              float64        `json:"rps"`
	Latency          Latency        `json:"latency_ms"`
	Status           map[string]int `json:"status"`
	Errors           map[string]int `json:"errors"`
	Non2xx           int            `json:"non_2xx"`
	Duplicates       int            `json:"duplicates"`
	AckedTotal       int            `json:"acked_total"`
	LoadSeconds      float64        `json:"load_s"`
	ClientCPUSeconds float64        `json:"client_cpu_s"`
	// ClientMicrosPerRequest is the generator's CPU per request sent
	// (warm-up included): its share of the cores the server does not get.
	ClientMicrosPerRequest float64 `json:"client_us_per_request"`
	// ServerCPU is the CPU time of each -pids process over the measured
	// period only.
	ServerCPU map[string]ProcCPU `json:"server_cpu,omitempty"`
	// LoadAvg is the 1-minute load average before and after the run: a
	// shared machine's noise shows up here.
	LoadAvg         [2]float64   `json:"loadavg"`
	PoolSize        int          `json:"pool_size"`
	PoolGenSeconds  float64      `json:"pool_gen_s"`
	InlineGenerated int64        `json:"inline_generated"`
	Drain           *DrainReport `json:"drain,omitempty"`
	Batches         *Batches     `json:"batches,omitempty"`
	// Open is the open loop's schedule, late and missed requests (-rate).
	Open *OpenLoop `json:"open,omitempty"`
	// RSS is the resident memory of each -pids process over the load.
	RSS map[string]ProcRSS `json:"rss,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// DrainReport is the async delivery after the load: Target acknowledged
// events, of which the backend had AtLoadEnd when the load stopped and
// Received at the end of the wait.
type DrainReport struct {
	Target       int64   `json:"target"`
	AtLoadEnd    int64   `json:"at_load_end"`
	Received     int64   `json:"received"`
	Complete     bool    `json:"complete"`
	Seconds      float64 `json:"seconds"`
	DeliveryRate float64 `json:"delivery_rate_after_load"`
	Error        string  `json:"error,omitempty"`
}

func newReport(cfg config, workers []*worker, bodySize int) *Report {
	rep := &Report{
		Label:           cfg.Label,
		Mode:            cfg.Mode,
		URL:             cfg.URL,
		Concurrency:     cfg.Concurrency,
		DurationSeconds: cfg.Duration.Seconds(),
		WarmupSeconds:   cfg.Warmup.Seconds(),
		BodyBytes:       bodySize,
		Status:          map[string]int{},
		Errors:          map[string]int{},
	}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.latencies...)
		for code, n := range w.status {
			rep.Status[strconv.Itoa(code)] += n
			if code < 200 || code > 299 {
				rep.Non2xx += n
			}
		}
		for k, n := range w.errs {
			rep.Errors[k] += n
		}
		rep.Duplicates += w.dups
		rep.AckedTotal += w.acked
	}
	rep.Requests = len(all) - rep.Non2xx
	rep.RPS = float64(rep.Requests) / cfg.Duration.Seconds()
	rep.Latency = latencies(all)
	return rep
}

// latencies computes exact percentiles (nearest rank) over every measured
// request, successful or not.
func latencies(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x) / 1e6 }
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(d))+0.999999) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{
		Mean: ms(sum / time.Duration(len(d))),
		P50:  ms(rank(0.50)),
		P90:  ms(rank(0.90)),
		P99:  ms(rank(0.99)),
		P999: ms(rank(0.999)),
		Max:  ms(d[len(d)-1]),
	}
}

// Text is a short human summary.
func (r *Report) Text() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: %s c=%d body=%dB %.0fs: %.0f req/s  p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.1f ms\n",
		r.Label, r.Mode, r.Concurrency, r.BodyBytes, r.DurationSeconds, r.RPS,
		r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max)
	fmt.Fprintf(&b, "  ok %d  non-2xx %d %v  errors %v  duplicates %d  acked(total) %d  client CPU %.1fs  inline-generated %d\n",
		r.Requests, r.Non2xx, r.Status, r.Errors, r.Duplicates, r.AckedTotal, r.ClientCPUSeconds, r.InlineGenerated)
	if o := r.Open; o != nil {
		fmt.Fprintf(&b, "  open loop at %.0f/s: %d scheduled, %d late (> %.1f ms), %d missed; send lag p50 %.2f ms p99 %.2f ms; service p50 %.2f ms p99 %.2f ms\n",
			o.Rate, o.Scheduled, o.Late, o.LateAfterMS, o.Missed, o.SendLag.P50, o.SendLag.P99, o.Service.P50, o.Service.P99)
		if o.Missed > 0 {
			fmt.Fprintf(&b, "  OVERLOADED: %d requests missed, the percentiles leave them out\n", o.Missed)
		}
	}
	for name, m := range r.RSS {
		fmt.Fprintf(&b, "  %s RSS: peak %d MiB (anon %d MiB at the peak), at the end %d MiB\n", name, m.PeakKB>>10, m.PeakAnonKB>>10, m.EndKB>>10)
	}
	if d := r.Drain; d != nil {
		fmt.Fprintf(&b, "  drain: %d/%d delivered (%d at load end) in %.2fs after the load, complete=%v\n",
			d.Received, d.Target, d.AtLoadEnd, d.Seconds, d.Complete)
	}
	if bt := r.Batches; bt != nil && bt.Syncs > 0 {
		fmt.Fprintf(&b, "  store: %.1f writes per group commit (%.0f commits), %.1f writes per transaction\n",
			bt.WritesPerSync, bt.Syncs, bt.WritesPerTxn)
	}
	return b.String()
}
