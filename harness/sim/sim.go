// Package sim simulates the webhook providers against a gateway: it
// generates realistic envelopes for every documented event type, signs or
// authenticates them the way each provider does, sends them with each
// provider's delivery behaviour (payment: parallel, out of order, retried on
// its documented schedule compressed in time; loyalty: one attempt with a
// 1 s timeout; subscription: bursts), and records every attempt so a report
// can compare what was acknowledged with what reached the merchant.
//
// Each provider is one file, gen_<name>.go, that registers its Provider:
// its bodies, its delivery behaviour and its command-line options.
package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Kind tells why a body was sent.
type Kind string

const (
	// Original is the first send of a logical event.
	Original Kind = "original"
	// Duplicate re-sends the original's exact bytes right away, as a
	// provider does when its own bookkeeping fails.
	Duplicate Kind = "duplicate"
	// Redelivery sends the same logical event again later, re-encoded
	// (other key order and layout, the subscription id in its other JSON
	// form): dedup must work on ids, not bytes.
	Redelivery Kind = "redelivery"
	// Repeat sends a loyalty body again byte for byte, later than the
	// route's dedup window: a real second update of the same customer,
	// which the gateway must take as a new event.
	Repeat Kind = "repeat"
)

// DefaultDedupWindow is the gateway's default dedup_window: how long
// identical content from a provider without event ids counts as one event.
const DefaultDedupWindow = 30 * time.Second

// DefaultTimeout bounds one attempt of a provider that sets no Timeout.
const DefaultTimeout = 10 * time.Second

// ProviderConfig is how the simulator reaches and authenticates to one
// gateway route. Every auth field that is set is applied, whatever the
// provider, so a test can also send a wrong or missing credential.
type ProviderConfig struct {
	// Path is appended to Config.BaseURL; empty means "/<provider>".
	Path string `json:"path,omitempty"`
	// SecretPath is appended as a last path segment (the subscription
	// platform's only authentication).
	SecretPath string `json:"-"`
	// Source is the canonical source the route assigns; empty means
	// "/<provider>". Expected dedup keys use it.
	Source string `json:"source,omitempty"`
	// TypePrefix is the route's type prefix, if any; expected keys are
	// computed with it so they match the gateway's exactly.
	TypePrefix string `json:"type_prefix,omitempty"`
	// HeaderName and HeaderValue are the loyalty platform's custom header.
	HeaderName  string `json:"header_name,omitempty"`
	HeaderValue string `json:"-"`
	// BasicUser and BasicPassword send HTTP Basic auth (payment gateway).
	BasicUser     string `json:"basic_user,omitempty"`
	BasicPassword string `json:"-"`
	// SignatureKey adds X-Signature: lowercase hex HMAC-SHA256 of the raw
	// body (payment gateway).
	SignatureKey string `json:"-"`
	// Weight is the provider's share of generated events relative to the
	// other providers; 0 means 1.
	Weight float64 `json:"weight,omitempty"`
	// Types restricts the event types sent; empty means all of
	// EventTypes[provider], in turn.
	Types []string `json:"types,omitempty"`
	// DedupWindow is the route's dedup_window, for a provider whose ids the
	// gateway derives: 0 means DefaultDedupWindow, a negative value a route
	// that turns it off (dedup_window 0). The report counts the events such
	// a provider's bodies make by it.
	DedupWindow time.Duration `json:"dedup_window,omitempty"`
}

// dedupWindow is p's effective window for provider, 0 when the provider
// sends its own ids or the route turns the window off.
func (p ProviderConfig) dedupWindow(provider string) time.Duration {
	switch {
	case !normalize.DerivesIDs(provider) || p.DedupWindow < 0:
		return 0
	case p.DedupWindow == 0:
		return DefaultDedupWindow
	}
	return p.DedupWindow
}

// ExpectFunc computes the keys a gateway should deduplicate the events of
// one body by.
type ExpectFunc func(provider, source string, body []byte) ([]Key, error)

// NormalizeExpect computes expected keys with the gateway's own normalizer:
// the (source, id) of events with a provider id, the content key of events
// whose ids the gateway derives (their ids have a random part no sender can
// predict). typePrefix is the route's type prefix per provider (nil for
// none).
func NormalizeExpect(typePrefix map[string]string) ExpectFunc {
	return func(provider, source string, body []byte) ([]Key, error) {
		var keys []Key
		_, err := normalize.Each(body, normalize.Options{
			Provider: provider, Source: source, TypePrefix: typePrefix[provider],
		}, func(ev *schemas.Event, contentKey string) error {
			if contentKey != "" {
				keys = append(keys, Key{Source: ev.Source, ID: contentKey, Content: true})
			} else {
				keys = append(keys, Key{Source: ev.Source, ID: ev.ID})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return keys, nil
	}
}

// Config drives one simulation run.
type Config struct {
	// BaseURL is the gateway, e.g. "http://127.0.0.1:8080".
	BaseURL string `json:"base_url"`
	// Targets are further gateways sharing one store: each request goes to
	// the next of BaseURL and Targets in turn, as a round-robin load
	// balancer in front of them would send it.
	Targets []string `json:"targets,omitempty"`
	// Providers to simulate, keyed by provider name; only these are sent.
	Providers map[string]ProviderConfig `json:"providers"`
	// Rate is the number of logical events generated per second across
	// providers; 0 means as fast as the senders take them.
	Rate float64 `json:"rate,omitempty"`
	// Count is the number of logical events; Duration bounds generation in
	// time. When both are set the first reached stops it; when neither is,
	// Count is 100.
	Count    int           `json:"count,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Concurrency is the number of parallel senders per provider (default
	// 8); the payment gateway never uses more than USAePayMaxConns.
	Concurrency int `json:"concurrency,omitempty"`
	// DuplicateShare is the share of logical events whose exact body is
	// sent a second time at once; RedeliveryShare the share re-sent
	// re-encoded after up to RedeliveryDelay (default 200ms).
	DuplicateShare  float64       `json:"duplicate_share,omitempty"`
	RedeliveryShare float64       `json:"redelivery_share,omitempty"`
	RedeliveryDelay time.Duration `json:"redelivery_delay,omitempty"`
	// RepeatShare is the share of events of a provider's Repeats types (the
	// loyalty platform's RepeatTypes) sent again byte for byte RepeatAfter
	// later (default: the route's dedup window plus a fifth of it, at least
	// 500ms more), as a real second update of the same customer.
	// RepeatAfter must exceed the window.
	RepeatShare float64       `json:"repeat_share,omitempty"`
	RepeatAfter time.Duration `json:"repeat_after,omitempty"`

	// Retry is how the payment gateway retries (see its Provider.Retry).
	Retry RetryPolicy `json:"retry"`
	// USAePayMaxConns caps the payment gateway's parallel connections
	// (default 20, as documented).
	USAePayMaxConns int `json:"usaepay_max_conns,omitempty"`
	// USAePayTimeout is the payment gateway's per-attempt timeout (default
	// 10s, compressed from 5 s connect plus 45 s read).
	USAePayTimeout time.Duration `json:"usaepay_timeout,omitempty"`
	// LoyaltyTimeout is the loyalty platform's total timeout (default 1s).
	LoyaltyTimeout time.Duration `json:"loyalty_timeout,omitempty"`
	// SublyticsTimeout is the subscription platform's timeout (default
	// 10s; undocumented).
	SublyticsTimeout time.Duration `json:"sublytics_timeout,omitempty"`
	// BurstSize events of a provider that sends Bursts (the subscription
	// platform) are sent back to back, then it pauses for BurstPause
	// (defaults 20 and 500ms, compressed from about five minutes).
	BurstSize  int           `json:"burst_size,omitempty"`
	BurstPause time.Duration `json:"burst_pause,omitempty"`

	// Gen tunes payloads.
	Gen GenOptions `json:"-"`
	// Expect computes expected keys; nil means NormalizeExpect with the
	// providers' type prefixes.
	Expect ExpectFunc `json:"-"`
	// Transport overrides the HTTP transport of every provider (tests).
	Transport http.RoundTripper `json:"-"`
}

// Send records one HTTP attempt.
type Send struct {
	// Seq orders attempts by start.
	Seq int64 `json:"seq"`
	// Event numbers the logical event; duplicates, redeliveries and retries
	// share their original's number.
	Event    int64  `json:"event"`
	Provider string `json:"provider"`
	Type     string `json:"type"`
	Kind     Kind   `json:"kind"`
	// Attempt is 1 for a body's first attempt and counts provider retries.
	Attempt int `json:"attempt"`
	// Body is the exact bytes sent.
	Body []byte `json:"-"`
	// Items is the number of canonical events the body carries.
	Items int `json:"items"`
	// Keys are the keys the gateway should deduplicate the body's events
	// by; KeyErr says why they could not be computed.
	Keys   []Key  `json:"keys,omitempty"`
	KeyErr string `json:"key_err,omitempty"`
	// DedupWindow is the route's window for content keys (0: the provider
	// sends ids, or the route turns the window off).
	DedupWindow time.Duration `json:"dedup_window,omitempty"`
	// Start is when the request started; Latency how long until the
	// answer (or the error).
	Start   time.Time     `json:"start"`
	Latency time.Duration `json:"latency"`
	// Status is the gateway's HTTP status, 0 on a network error or
	// timeout (Err then says which).
	Status int    `json:"status"`
	Err    string `json:"err,omitempty"`
	// Response is the start of the gateway's answer.
	Response string `json:"response,omitempty"`
}

// Acked reports whether the gateway took responsibility for the body: any
// 2xx, including a 200 duplicate answer.
func (s *Send) Acked() bool { return s.Status >= 200 && s.Status < 300 }

// DuplicateAnswer reports whether the gateway answered that it already had
// the event.
func (s *Send) DuplicateAnswer() bool {
	return s.Status == http.StatusOK && strings.Contains(s.Response, "duplicate")
}

// AckedAt is when the acknowledgement arrived (zero if none).
func (s *Send) AckedAt() time.Time {
	if !s.Acked() {
		return time.Time{}
	}
	return s.Start.Add(s.Latency)
}

// Simulator runs a Config. Use New, then Run once; Sends may be read at any
// time.
type Simulator struct {
	cfg     Config
	expect  ExpectFunc
	gen     *Generator
	clients map[string]*http.Client

	seq    atomic.Int64
	rr     atomic.Uint64 // the next of bases
	bases  []string      // BaseURL, then Targets
	mu     sync.Mutex
	sends  []Send
	rngMu  sync.Mutex
	jitter *mrand.Rand
}

type job struct {
	ev      *Event
	event   int64
	kind    Kind
	attempt int
	keys    []Key
	keyErr  string
	window  time.Duration
	// repeat: once sent, send this original again RepeatAfter later.
	repeat bool
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Simulator, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("sim: BaseURL is required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	bases := []string{cfg.BaseURL}
	for _, t := range cfg.Targets {
		bases = append(bases, strings.TrimRight(t, "/"))
	}
	if len(cfg.Providers) == 0 {
		return nil, errors.New("sim: no providers configured")
	}
	for name, p := range cfg.Providers {
		if lookup(name) == nil {
			return nil, fmt.Errorf("sim: unknown provider %q (want one of %s)", name, strings.Join(Providers(), ", "))
		}
		for _, t := range p.Types {
			if !slices.Contains(EventTypes[name], t) {
				return nil, fmt.Errorf("sim: unknown %s event type %q", name, t)
			}
		}
		if p.Weight < 0 {
			return nil, fmt.Errorf("sim: %s weight is negative", name)
		}
	}
	for _, s := range []float64{cfg.DuplicateShare, cfg.RedeliveryShare, cfg.RepeatShare, cfg.Rate, cfg.Retry.Scale} {
		if s < 0 {
			return nil, errors.New("sim: rates, shares and the retry scale must not be negative")
		}
	}
	if cfg.DuplicateShare > 1 || cfg.RedeliveryShare > 1 || cfg.RepeatShare > 1 {
		return nil, errors.New("sim: shares must be at most 1")
	}
	if cfg.Retry.Attempts < 0 || cfg.Retry.Attempts > len(USAePayRetrySchedule)+1 {
		return nil, fmt.Errorf("sim: retry attempts must be 0 (the whole schedule) to %d", len(USAePayRetrySchedule)+1)
	}
	if cfg.RepeatShare > 0 {
		// A repeat must land outside the dedup window of every route
		// whose provider repeats bodies.
		var w time.Duration
		for _, p := range registry {
			if len(p.Repeats) > 0 {
				w = max(w, cfg.Providers[p.Name].dedupWindow(p.Name))
			}
		}
		if cfg.RepeatAfter <= 0 {
			cfg.RepeatAfter = w + max(w/5, 500*time.Millisecond)
		}
		if cfg.RepeatAfter <= w {
			return nil, fmt.Errorf("sim: repeat_after %v must exceed the routes' dedup window %v", cfg.RepeatAfter, w)
		}
	}
	if cfg.Count <= 0 && cfg.Duration <= 0 {
		cfg.Count = 100
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	defInt(&cfg.Concurrency, 8)
	defInt(&cfg.USAePayMaxConns, 20)
	defInt(&cfg.BurstSize, 20)
	if cfg.Retry.Scale == 0 {
		cfg.Retry.Scale = DefaultRetryScale
	}
	def(&cfg.RedeliveryDelay, 200*time.Millisecond)
	def(&cfg.USAePayTimeout, 10*time.Second)
	def(&cfg.LoyaltyTimeout, time.Second)
	def(&cfg.SublyticsTimeout, 10*time.Second)
	def(&cfg.BurstPause, 500*time.Millisecond)

	prefixes := map[string]string{}
	for name, p := range cfg.Providers {
		prefixes[name] = p.TypePrefix
	}
	s := &Simulator{
		cfg:     cfg,
		expect:  cfg.Expect,
		gen:     NewGenerator(cfg.Gen),
		clients: map[string]*http.Client{},
		bases:   bases,
		jitter:  mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7)),
	}
	for name := range cfg.Providers {
		s.clients[name] = s.client(name)
	}
	if s.expect == nil {
		s.expect = NormalizeExpect(prefixes)
	}
	return s, nil
}

// Generator exposes the payload generator, e.g. to build fixtures.
func (s *Simulator) Generator() *Generator { return s.gen }

// Config returns the configuration with defaults applied.
func (s *Simulator) Config() Config { return s.cfg }

// workers is the number of parallel senders for a provider.
func (s *Simulator) workers(provider string) int {
	p := lookup(provider)
	switch {
	case p.Bursts:
		// Bursts go back to back from one sender.
		return 1
	case p.Workers != nil:
		return max(1, p.Workers(&s.cfg))
	}
	return s.cfg.Concurrency
}

func (s *Simulator) client(provider string) *http.Client {
	p := lookup(provider)
	rt := s.cfg.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.MaxIdleConnsPerHost = s.workers(provider)
		if p.MaxConns != nil {
			t.MaxConnsPerHost = p.MaxConns(&s.cfg)
		}
		rt = t
	}
	timeout := DefaultTimeout
	if p.Timeout != nil {
		timeout = p.Timeout(&s.cfg)
	}
	return &http.Client{
		Transport: rt,
		Timeout:   timeout,
		// A provider posts to the URL it was given; a redirect is a
		// misconfigured route, recorded as its 3xx status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL is where the simulator posts a provider's events (on BaseURL).
func (s *Simulator) URL(provider string) string { return s.urlOn(s.cfg.BaseURL, provider) }

// nextURL is URL on the next gateway of BaseURL and Targets in turn.
func (s *Simulator) nextURL(provider string) string {
	return s.urlOn(s.bases[(s.rr.Add(1)-1)%uint64(len(s.bases))], provider)
}

func (s *Simulator) urlOn(base, provider string) string {
	p := s.cfg.Providers[provider]
	path := p.Path
	if path == "" {
		path = "/" + provider
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := base + path
	if p.SecretPath != "" {
		u = strings.TrimRight(u, "/") + "/" + strings.Trim(p.SecretPath, "/")
	}
	return u
}

// Source is the canonical source expected for a provider's events.
func (s *Simulator) Source(provider string) string {
	if src := s.cfg.Providers[provider].Source; src != "" {
		return src
	}
	return "/" + provider
}

// Sends returns a copy of every attempt recorded so far, in completion
// order.
func (s *Simulator) Sends() []Send {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sends)
}

// Run generates and sends events until Count or Duration is reached and
// every retry and redelivery has been sent or given up. It returns ctx's
// error if ctx ends first; what was sent until then stays recorded.
func (s *Simulator) Run(ctx context.Context) error {
	queues := map[string]chan job{}
	for name := range s.cfg.Providers {
		queues[name] = make(chan job, 256)
	}
	// pending counts jobs not finished for good (including scheduled
	// retries and redeliveries) plus the producer itself; queues close when
	// it reaches zero, which ends the senders.
	var pending sync.WaitGroup
	pending.Add(1)
	go func() {
		pending.Wait()
		for _, q := range queues {
			close(q)
		}
	}()

	var senders sync.WaitGroup
	for name, q := range queues {
		n := s.workers(name)
		for range n {
			senders.Go(func() {
				if lookup(name).Bursts {
					s.burstSender(ctx, q, &pending, queues)
					return
				}
				for j := range q {
					s.process(ctx, j, &pending, queues)
				}
			})
		}
	}

	s.produce(ctx, queues, &pending)
	pending.Done()
	senders.Wait()
	return ctx.Err()
}

// enqueue hands j to its provider's senders unless ctx has ended; the caller
// has already counted j in pending.
func enqueue(ctx context.Context, queues map[string]chan job, j job, pending *sync.WaitGroup) {
	select {
	case queues[j.ev.Provider] <- j:
	case <-ctx.Done():
		pending.Done()
	}
}

func (s *Simulator) produce(ctx context.Context, queues map[string]chan job, pending *sync.WaitGroup) {
	names := make([]string, 0, len(s.cfg.Providers))
	for name := range s.cfg.Providers {
		names = append(names, name)
	}
	slices.Sort(names)
	weights := make([]float64, len(names))
	for i, n := range names {
		weights[i] = s.cfg.Providers[n].Weight
		if weights[i] == 0 {
			weights[i] = 1
		}
	}
	// Smooth weighted round robin: proportional and deterministic, so
	// even a short run covers every provider.
	current := make([]float64, len(names))
	var total float64
	for _, w := range weights {
		total += w
	}
	typeTurn := map[string]int{}

	start := time.Now()
	var interval time.Duration
	if s.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / s.cfg.Rate)
	}
	for i := 0; s.cfg.Count <= 0 || i < s.cfg.Count; i++ {
		if s.cfg.Duration > 0 && time.Since(start) >= s.cfg.Duration {
			return
		}
		if interval > 0 {
			// Pace against the start time, not the previous send, so
			// a slow iteration does not lower the average rate.
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		best := 0
		for k := range current {
			current[k] += weights[k]
			if current[k] > current[best] {
				best = k
			}
		}
		current[best] -= total
		name := names[best]

		types := s.cfg.Providers[name].Types
		if len(types) == 0 {
			types = EventTypes[name]
		}
		typ := types[typeTurn[name]%len(types)]
		typeTurn[name]++
		ev, err := s.gen.Generate(name, typ)
		if err != nil {
			// New validated every type; a failure here is a bug.
			panic(err)
		}
		orig := s.newJob(ev, int64(i), Original)
		orig.repeat = slices.Contains(lookup(name).Repeats, typ) && s.chance(s.cfg.RepeatShare)
		pending.Add(1)
		enqueue(ctx, queues, orig, pending)

		if s.chance(s.cfg.DuplicateShare) {
			dup := orig
			dup.kind, dup.repeat = Duplicate, false
			pending.Add(1)
			enqueue(ctx, queues, dup, pending)
		}
		if s.chance(s.cfg.RedeliveryShare) {
			re := s.newJob(s.gen.Redelivery(ev), int64(i), Redelivery)
			delay := s.cfg.RedeliveryDelay/2 + s.jitterDur(s.cfg.RedeliveryDelay/2)
			pending.Add(1)
			time.AfterFunc(delay, func() { enqueue(ctx, queues, re, pending) })
		}

	}
}

func (s *Simulator) newJob(ev *Event, event int64, kind Kind) job {
	j := job{ev: ev, event: event, kind: kind, attempt: 1, window: s.cfg.Providers[ev.Provider].dedupWindow(ev.Provider)}
	source := s.Source(ev.Provider)
	keys, err := s.expect(ev.Provider, source, ev.Body)
	j.keys = keys
	if err != nil {
		j.keyErr = err.Error()
	}
	return j
}

func (s *Simulator) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.jitter.Float64() < p
}

// jitterDur returns a random duration in [0, d).
func (s *Simulator) jitterDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return time.Duration(s.jitter.Int64N(int64(d)))
}

// burstSender sends the events of a provider that sends Bursts: BurstSize
// back to back, then a pause.
func (s *Simulator) burstSender(ctx context.Context, q chan job, pending *sync.WaitGroup, queues map[string]chan job) {
	sent := 0
	for j := range q {
		s.process(ctx, j, pending, queues)
		sent++
		if sent%s.cfg.BurstSize == 0 {
			t := time.NewTimer(s.cfg.BurstPause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// process sends one attempt, records it and, for a provider that retries,
// schedules the retry it would make.
func (s *Simulator) process(ctx context.Context, j job, pending *sync.WaitGroup, queues map[string]chan job) {
	defer pending.Done()
	if ctx.Err() != nil {
		return
	}
	rec := s.send(ctx, j)
	if j.repeat && ctx.Err() == nil {
		// Counted from the end of the first send, so the repeat is
		// outside the window of wherever the gateway stored the first.
		rep := j
		rep.kind, rep.repeat = Repeat, false
		pending.Add(1)
		time.AfterFunc(s.cfg.RepeatAfter, func() { enqueue(ctx, queues, rep, pending) })
	}
	retry := lookup(j.ev.Provider).Retry
	if retry == nil || rec.Acked() || ctx.Err() != nil {
		return
	}
	// A provider retries on a timeout, a network error or any 4xx/5xx; a
	// 3xx is a misconfigured URL it does not retry.
	if rec.Status != 0 && rec.Status < 400 {
		return
	}
	delay, ok := retry(&s.cfg, j.attempt)
	if !ok {
		return
	}
	next := j
	next.attempt++
	pending.Add(1)
	// The schedule is fixed, without jitter: retries of events that failed
	// together arrive together, as the real sender's do.
	time.AfterFunc(delay, func() { enqueue(ctx, queues, next, pending) })
}

func (s *Simulator) send(ctx context.Context, j job) Send {
	p := s.cfg.Providers[j.ev.Provider]
	rec := Send{
		Seq:      s.seq.Add(1),
		Event:    j.event,
		Provider: j.ev.Provider,
		Type:     j.ev.Type,
		Kind:     j.kind,
		Attempt:  j.attempt,
		Body:     j.ev.Body,
		Items:    j.ev.Items,
		Keys:     j.keys,
		KeyErr:   j.keyErr,

		DedupWindow: j.window,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.nextURL(j.ev.Provider), bytes.NewReader(j.ev.Body))
	if err != nil {
		rec.Err = err.Error()
		s.record(rec)
		return rec
	}
	Authenticate(req, p, j.ev.Body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "webhook-harness-sim/"+j.ev.Provider)

	rec.Start = time.Now()
	resp, err := s.clients[j.ev.Provider].Do(req)
	if err != nil {
		rec.Latency = time.Since(rec.Start)
		rec.Err = errorKind(err)
		s.record(rec)
		return rec
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	rec.Latency = time.Since(rec.Start)
	rec.Status = resp.StatusCode
	rec.Response = string(head)
	s.record(rec)
	return rec
}

func (s *Simulator) record(rec Send) {
	s.mu.Lock()
	s.sends = append(s.sends, rec)
	s.mu.Unlock()
}

// errorKind shortens a client error to what a report needs: a timeout is
// not the same failure as a refused connection.
func errorKind(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}

// Authenticate adds the credentials p configures to req: the custom header,
// HTTP Basic, and X-Signature over body. The secret path segment is part of
// the URL instead.
func Authenticate(req *http.Request, p ProviderConfig, body []byte) {
	if p.HeaderName != "" {
		req.Header.Set(p.HeaderName, p.HeaderValue)
	}
	if p.BasicUser != "" || p.BasicPassword != "" {
		req.SetBasicAuth(p.BasicUser, p.BasicPassword)
	}
	if p.SignatureKey != "" {
		req.Header.Set("X-Signature", Signature(p.SignatureKey, body))
	}
}

// Signature is the payment gateway's X-Signature: lowercase hex
// HMAC-SHA256 of the raw body, no prefix, no timestamp.
func Signature(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
