package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Engine defaults.
const (
	DefaultWorkers      = 16
	DefaultTimeout      = 30 * time.Second
	DefaultPollInterval = time.Second
	DefaultStopTimeout  = 10 * time.Second
	// DialTimeout bounds connecting to an upstream, so an unreachable host
	// fails the attempt (or moves to the next upstream) quickly.
	DialTimeout = 5 * time.Second
	// leaseMargin is added to the attempt timeout for the default lease: the
	// lease must outlive the attempt plus the time to record it, or a second
	// engine could claim the event while the first is still sending it.
	leaseMargin = 30 * time.Second
	// recordTimeout bounds one write of an attempt's outcome to the store
	// (a failed write is tried again while the lease lasts, see record).
	recordTimeout = 10 * time.Second
	// maxDrain is how much of a response body is read so the connection
	// can be reused; a larger body is abandoned with its connection.
	maxDrain = 64 << 10
	// snippetLen is how much of a failed response body goes into the
	// attempt's error, to show an operator what the backend said.
	snippetLen = 200
)

// Observer receives delivery outcomes; the Caddy glue implements it with
// Prometheus metrics. Calls happen on worker goroutines and must not block.
type Observer interface {
	// Delivered: an attempt (or replay) to destination got a 2xx.
	Delivered(source, destination string, status int, latency time.Duration)
	// Failed: an attempt (or replay) to destination got no 2xx; status is
	// 0 when no response arrived (connection refused, timeout).
	Failed(source, destination string, status int, latency time.Duration)
	// Dead: an event's delivery to destination was given up on; reason
	// says why.
	Dead(source, destination string, reason store.DeadReason)
}

// LaneObserver is implemented by an Observer that also wants to know when
// an ordered lane is parked: its head delivery went dead, so nothing
// behind it is delivered until an operator replays or skips it. The engine
// calls it once per dead head, after Dead, with the lane and the event
// that holds it.
type LaneObserver interface {
	LaneParked(destination, lane, source, id string)
}

// BreakerObserver is implemented by an Observer that also wants the state
// of each destination's circuit breaker (a metric). The engine calls it
// when it starts and at every change of state.
type BreakerObserver interface {
	BreakerState(destination string, state throttle.State)
}

// Config configures an Engine.
type Config struct {
	// Store holds the events; required.
	Store store.Store
	// Destination names the destination this engine delivers to; required.
	// It claims the deliveries bound to it (store.Delivery.Destination),
	// of any source, and none other: each destination has an engine of its
	// own, with its own upstreams and secret.
	Destination string
	// Upstreams are absolute http(s) URLs; required. Each attempt starts at
	// the next upstream in turn (round-robin) and, when the connection
	// cannot be made (the request was certainly not sent), fails over to
	// the following ones within the same attempt. Any other error,
	// including a timeout after the request was sent, ends the attempt:
	// sending it elsewhere could deliver it twice at once.
	Upstreams []string
	// Workers is the number of concurrent deliveries. Default: 16.
	Workers int
	// Timeout bounds one attempt: connect, send, and read the response
	// headers and up to 64 KiB of body. Default: 30s.
	Timeout time.Duration
	// Client sends the requests. Default: NewClient(Workers, Timeout).
	Client *http.Client
	// Owner names this engine in leases; it must differ between engines
	// sharing a store (two configs alive during a Caddy reload). Default:
	// random.
	Owner string
	// Lease is how long a claimed event stays reserved for this engine. It
	// must exceed Timeout; what is left after the attempt is the time to
	// record its outcome, tried again while the store fails (a database
	// restarting). Default: Timeout + 30s.
	Lease time.Duration
	// PollInterval is how often the store is checked for due events when
	// nothing wakes the engine (Notify, or a retry timer of this engine).
	// Default: 1s.
	PollInterval time.Duration
	// StopTimeout bounds how long Stop waits for in-flight attempts before
	// cancelling them. Default: 10s.
	StopTimeout time.Duration
	// Backoff is the retry policy.
	Backoff Backoff
	// Rate limits how fast attempts to the destination start, in this
	// engine (so per gateway process: N gateways sharing a store send up
	// to N times the rate). It is also the pace at which a backlog drains
	// once a paused destination resumes. The zero value: no limit beyond
	// Workers.
	Rate throttle.Rate
	// Breaker configures the destination's circuit breaker, which is
	// always on: after Breaker.Failures consecutive failed attempts the
	// destination is paused and probed with one attempt per cooldown. Zero
	// fields take the throttle package's defaults (5 failures, 5s, 1m).
	Breaker throttle.BreakerConfig
	// Headers builds the delivery headers (and signs). Default: unsigned.
	Headers *HeaderBuilder
	// Logger must not log secrets; default: no logging.
	Logger *zap.Logger
	// Observer receives outcomes; may be nil.
	Observer Observer
	// Tracing gives the TracerProvider of the attempts' and replays'
	// spans (see trace.go); nil, or a nil provider: not traced.
	Tracing TracerProviderFunc
	// Now is the clock the engine schedules by: what is due, the time a
	// retry falls due, the time a signature carries. Default: time.Now.
	// Tests pass the clock they gave the store (as the store's Options.Now
	// does) to move time forward instead of waiting it out.
	Now func() time.Time
}

// Engine delivers stored events asynchronously: workers claim due events
// from the store under a lease, POST each to an upstream, and record the
// attempt and the next state durably. All state is in the store, so pending
// work resumes after a restart, and several engines on one store (during a
// reload) never send the same attempt twice.
type Engine struct {
	cfg       Config
	upstreams []*url.URL
	limiter   *throttle.Limiter // nil without a rate
	breaker   *throttle.Breaker
	pauses    pauses
	rr        atomic.Uint64
	wake      chan struct{}

	mu             sync.Mutex
	running        bool
	stopping       atomic.Bool
	cancelClaim    context.CancelFunc
	claimerDone    chan struct{}
	attemptCtx     context.Context
	cancelAttempts context.CancelFunc
	inflight       sync.WaitGroup

	// timers wake the claimer for retries due before the next poll. They
	// have their own lock: Stop holds mu while workers, which add timers,
	// finish.
	tmu      sync.Mutex
	timersOn bool
	timers   map[*time.Timer]struct{}

	// passes counts the claim loop's passes, so a test can tell that the
	// engine looked and did nothing (a paused destination claims nothing).
	passes atomic.Int64

	// held is an operator's pause (see Hold).
	held atomic.Bool
}

// NewClient returns an HTTP client for workers concurrent deliveries: its
// idle pool keeps one connection per worker per host, so a busy engine does
// not churn connections, and each phase has a bound: dial 5s, TLS
// handshake 10s, response headers and the whole request timeout. Redirects
// are not followed (a POST redirect is answered as a failed attempt), and
// no proxy from the environment is used: backends are usually internal.
func NewClient(workers int, timeout time.Duration) *http.Client {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * workers,
		MaxIdleConnsPerHost:   workers,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// New validates cfg, fills in defaults and returns a stopped engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("delivery: no store")
	}
	if err := store.ValidateDestination(cfg.Destination); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("delivery: no upstreams")
	}
	e := &Engine{wake: make(chan struct{}, 1), timers: map[*time.Timer]struct{}{}}
	for _, raw := range cfg.Upstreams {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("delivery: upstream %q must be an absolute http or https URL", redactURL(raw))
		}
		e.upstreams = append(e.upstreams, u)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = cfg.Timeout + leaseMargin
	}
	if cfg.Lease <= cfg.Timeout {
		return nil, fmt.Errorf("delivery: lease %s must exceed the attempt timeout %s", cfg.Lease, cfg.Timeout)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = "engine-" + hex.EncodeToString(b[:])
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Workers, cfg.Timeout)
	}
	if cfg.Headers == nil {
		cfg.Headers = NewHeaderBuilder(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Rate != (throttle.Rate{}) {
		lim, err := throttle.NewLimiter(cfg.Rate, 0)
		if err != nil {
			return nil, fmt.Errorf("delivery: destination %q: %w", cfg.Destination, err)
		}
		e.limiter = lim
	}
	br, err := throttle.NewBreaker(cfg.Breaker)
	if err != nil {
		return nil, fmt.Errorf("delivery: destination %q: %w", cfg.Destination, err)
	}
	e.breaker = br
	e.cfg = cfg
	return e, nil
}

// Destination returns the name of the destination the engine delivers to.
func (e *Engine) Destination() string { return e.cfg.Destination }

// Breaker returns the state of the destination's circuit breaker, as this
// engine sees it (each gateway process has its own).
func (e *Engine) Breaker() throttle.Snapshot { return e.breaker.Snapshot() }

// Owner returns the engine's lease owner id.
func (e *Engine) Owner() string { return e.cfg.Owner }

// Start launches the workers. ctx bounds claiming new work: once it is done
// no event is claimed, as after Stop; call Stop to wait for in-flight
// attempts. Start on a running engine is an error; Start after Stop runs
// the engine again.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running {
		return errors.New("delivery: engine already started")
	}
	claimCtx, cancel := context.WithCancel(ctx)
	// In-flight attempts are not tied to ctx: a config unload must let
	// them finish (bounded by Stop), not cut them mid-request.
	e.attemptCtx, e.cancelAttempts = context.WithCancel(context.WithoutCancel(ctx))
	e.cancelClaim = cancel
	e.claimerDone = make(chan struct{})
	e.stopping.Store(false)
	e.running = true
	e.tmu.Lock()
	e.timersOn = true
	e.tmu.Unlock()
	e.observeBreaker(e.breaker.Snapshot().State)
	// The loop claims at once, so work left by a previous run (or a
	// crashed process, once its leases expire) resumes without a Notify.
	go e.claimLoop(claimCtx)
	return nil
}

// Stop stops claiming, waits up to StopTimeout for in-flight attempts to
// finish and be recorded (an outcome the store does not take is tried
// again meanwhile), then cancels the rest. Events not yet attempted
// stay pending in the store (a claimed one has its lease released) and are
// picked up by the next engine that starts on the store. Stop on a stopped
// engine does nothing.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running {
		return nil
	}
	e.running = false
	e.stopping.Store(true)
	e.cancelClaim()
	<-e.claimerDone
	e.tmu.Lock()
	e.timersOn = false
	for t := range e.timers {
		t.Stop()
	}
	clear(e.timers)
	e.tmu.Unlock()

	done := make(chan struct{})
	go func() { e.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(e.cfg.StopTimeout):
		e.cancelAttempts()
		<-done
		err = fmt.Errorf("delivery: in-flight attempts cancelled after %s; their events will be retried", e.cfg.StopTimeout)
	}
	e.cancelAttempts()
	return err
}

// Notify wakes the workers to look for due events now, so a new event does
// not wait for the next poll. It never blocks.
func (e *Engine) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// claimLoop claims due events while workers are free and hands each to a
// goroutine; it is the only caller of Claim, so claims never race within
// one engine.
func (e *Engine) claimLoop(ctx context.Context) {
	defer close(e.claimerDone)
	sem := make(chan struct{}, e.cfg.Workers)
	ticker := time.NewTicker(e.cfg.PollInterval)
	defer ticker.Stop()
	for {
		// Wait for one free worker, then take every other free one.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	fill:
		for free < e.cfg.Workers {
			select {
			case sem <- struct{}{}:
				free++
			default:
				break fill
			}
		}

		now := e.cfg.Now()
		want, permit, until := e.admit(now, free)
		var recs []store.Claimed
		var err error
		if want > 0 {
			recs, err = e.cfg.Store.Claim(ctx, e.cfg.Owner, []string{e.cfg.Destination}, now, e.cfg.Lease, want)
			if err != nil && ctx.Err() == nil {
				e.cfg.Logger.Error("claiming due events", zap.Error(err))
			}
		}
		switch {
		case permit == throttle.Probe && len(recs) == 0:
			e.breaker.CancelProbe(now) // nothing due: probe with the next one
			e.observeBreaker(throttle.Open)
		case permit == throttle.Probe:
			e.cfg.Logger.Info("destination paused: probing with one delivery", zap.String("id", recs[0].Record.ID))
		case e.limiter != nil:
			e.limiter.Refund(want - len(recs))
		}
		for range free - len(recs) {
			<-sem
		}
		for _, c := range recs {
			e.inflight.Add(1)
			go func() {
				defer func() { <-sem; e.inflight.Done() }()
				e.deliver(c, permit == throttle.Probe)
			}()
		}
		e.passes.Add(1)
		if len(recs) == free && err == nil {
			continue // more may be due: claim again as workers free up
		}
		// Wake for the rate's next start or the breaker's next probe when
		// it comes before the next poll.
		var timer *time.Timer
		var fire <-chan time.Time
		if !until.IsZero() {
			if d := until.Sub(e.cfg.Now()); d < e.cfg.PollInterval {
				timer = time.NewTimer(max(d, 0))
				fire = timer.C
			}
		}
		select {
		case <-e.wake:
		case <-ticker.C:
		case <-fire:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// admit asks the breaker, then the limiter, how many of free workers may
// claim now. Denied (paused, or a probe is out): none, until the next
// probe. A probe: one. Otherwise what the rate allows (all of free without
// a rate); until is when more may start when fewer than free may now, and
// zero when the engine need not wake before its next poll or Notify.
func (e *Engine) admit(now time.Time, free int) (n int, permit throttle.Permit, until time.Time) {
	if e.held.Load() {
		return 0, throttle.Deny, time.Time{}
	}
	switch permit = e.breaker.Allow(now); permit {
	case throttle.Deny:
		return 0, permit, e.breaker.Snapshot().NextProbe
	case throttle.Probe:
		e.observeBreaker(throttle.HalfOpen)
		return 1, permit, time.Time{}
	}
	if e.limiter == nil {
		return free, permit, time.Time{}
	}
	n, next := e.limiter.Take(now, free)
	if n < free {
		until = next
	}
	return n, permit, until
}

// deliver makes one scheduled attempt of a claimed event and records it.
// probe says the breaker let it out as the one probe of a paused
// destination.
func (e *Engine) deliver(c store.Claimed, probe bool) {
	rec := c.Record
	log := e.cfg.Logger.With(zap.String("source", rec.Source), zap.String("id", rec.ID))
	d := rec.Delivery(c.Destination)
	if d == nil || c.Destination != e.cfg.Destination {
		// A store that breaks the contract; nothing is sent, and the lease
		// runs out.
		log.Error("claimed a delivery to another destination; left alone", zap.String("claimed", c.Destination))
		if probe {
			e.breaker.CancelProbe(e.cfg.Now())
		}
		return
	}
	if d.Lane != "" {
		log = log.With(zap.String("lane", d.Lane), zap.Uint64("sequence", d.Sequence))
	}
	if e.stopping.Load() {
		// Claimed while stopping: give it back untouched.
		e.releaseLease(rec, log)
		if probe {
			e.breaker.CancelProbe(e.cfg.Now())
		}
		return
	}
	number := len(d.Attempts) + 1
	res := e.send(e.attemptCtx, rec, d, number, false)
	e.observe(rec.Source, res)
	now := e.cfg.Now()
	brk := e.recordBreaker(now, res.Attempt.Status)
	dec := e.decide(rec, d, res, probe, brk, now)
	res.span.settle(dec.Decision)

	err := e.record(rec, d, res.Attempt, dec.Decision, log)
	fields := []zap.Field{zap.Int("attempt", number), zap.Int("status", res.Attempt.Status),
		zap.Duration("latency", res.Attempt.Latency)}
	if res.Attempt.Error != "" {
		fields = append(fields, zap.String("error", res.Attempt.Error))
	}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		log.Warn("lease lost during delivery attempt; another engine owns the event", fields...)
		return
	case err != nil:
		// Tried while the lease lasted (see record). The event keeps its
		// lease until it expires, then is retried: at least once, never
		// lost. The backend may see it again.
		log.Error("recording delivery attempt failed; the event will be sent again once its lease runs out",
			append(fields, zap.NamedError("store_error", err))...)
		return
	}
	switch dec.Status {
	case store.StatusDelivered:
		log.Debug("event delivered", fields...)
		if d.Lane != "" {
			// The write that delivered the head made its successor due.
			// Without a wake it would wait for the next poll whenever the
			// last claim came back short, which is how a lane's backlog
			// drains once few lanes hold the rest: one delivery per lane
			// per poll interval.
			e.Notify()
		}
	case store.StatusDead:
		log.Warn("event dead: no further attempts", append(fields, zap.String("reason", dec.Detail))...)
		if e.cfg.Observer != nil {
			e.cfg.Observer.Dead(rec.Source, e.cfg.Destination, dec.Reason)
		}
		if o, ok := e.cfg.Observer.(DeadEventObserver); ok {
			o.DeadEvent(rec.Source, rec.ID, e.cfg.Destination, dec.Reason)
		}
		if d.Lane != "" {
			log.Warn("lane parked: its head is dead; the deliveries behind it wait until it is replayed or skipped")
			if o, ok := e.cfg.Observer.(LaneObserver); ok {
				o.LaneParked(e.cfg.Destination, d.Lane, rec.Source, rec.ID)
			}
		}
	default:
		log.Info("delivery attempt failed; retry scheduled", append(fields, zap.Time("next_attempt_at", dec.NextAttemptAt))...)
		e.wakeAt(dec.NextAttemptAt)
	}
}

// wakeAt wakes the claimer when a retry falls due before the next poll, so
// short backoffs are honoured without a short poll interval.
func (e *Engine) wakeAt(at time.Time) {
	d := at.Sub(e.cfg.Now())
	if d >= e.cfg.PollInterval {
		return
	}
	e.tmu.Lock()
	defer e.tmu.Unlock()
	if !e.timersOn {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(max(d, 0), func() {
		e.tmu.Lock()
		delete(e.timers, t)
		e.tmu.Unlock()
		e.Notify()
	})
	e.timers[t] = struct{}{}
}

func (e *Engine) releaseLease(rec *store.Record, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := e.cfg.Store.ReleaseLease(ctx, rec.Source, rec.ID, e.cfg.Destination, e.cfg.Owner); err != nil {
		log.Warn("releasing lease on stop; the event waits for the lease to expire", zap.Error(err))
	}
}

func (e *Engine) observe(source string, res sendResult) {
	if e.cfg.Observer == nil {
		return
	}
	if s := res.Attempt.Status; s >= 200 && s <= 299 {
		e.cfg.Observer.Delivered(source, e.cfg.Destination, s, res.Attempt.Latency)
	} else {
		e.cfg.Observer.Failed(source, e.cfg.Destination, s, res.Attempt.Latency)
	}
}

// sendResult is one attempt as sent and answered.
type sendResult struct {
	Attempt    store.Attempt
	RetryAfter time.Duration
	URL        string
	Header     http.Header
	span       attemptSpan
}

// send POSTs the body of rec's delivery d (see Body) once (with failover
// on connection errors) and returns the attempt to record. It never
// returns an error: a failure is an attempt with Status 0 or a non-2xx
// status and an Error text.
func (e *Engine) send(ctx context.Context, rec *store.Record, d *store.Delivery, number int, replay bool) sendResult {
	at, start := e.cfg.Now(), time.Now() // start times the latency, on the real clock
	body := Body(rec, d)
	header := e.cfg.Headers.Build(withBody(rec, body), number, replay, at)
	ctx, span := e.startAttempt(ctx, rec, number, replay)
	span.inject(ctx, header)
	res := sendResult{Attempt: store.Attempt{Number: number, At: at, Replay: replay}, Header: header, span: span}

	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	first := int(e.rr.Add(1)-1) % len(e.upstreams)
	var failures []string
	for i := range e.upstreams {
		u := e.upstreams[(first+i)%len(e.upstreams)]
		res.URL = redactURL(u.String())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: building request: %v", u.Host, err))
			continue
		}
		req.Header = header.Clone()
		resp, err := e.cfg.Client.Do(req)
		if err != nil {
			failures = append(failures, u.Host+": "+describe(err))
			if isDialError(err) && ctx.Err() == nil {
				continue // not sent: the next upstream may take it
			}
			break
		}
		res.Attempt.Status = resp.StatusCode
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), e.cfg.Now())
		snippet := drain(resp.Body)
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			msg := fmt.Sprintf("%s: backend answered %d", u.Host, resp.StatusCode)
			if snippet != "" {
				msg += ": " + snippet
			}
			failures = append(failures, msg)
		}
		break
	}
	res.Attempt.Latency = time.Since(start)
	res.Attempt.Error = strings.Join(failures, "; ")
	span.sent(res.Attempt)
	return res
}

// drain reads a bounded part of the body so the connection can be reused,
// and returns its first bytes as printable text.
func drain(body io.ReadCloser) string {
	defer body.Close()
	buf := make([]byte, snippetLen)
	n, _ := io.ReadFull(body, buf)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	// A cut multi-byte character becomes invalid UTF-8: drop it.
	s := strings.ToValidUTF8(string(buf[:n]), "")
	return strings.Join(strings.Fields(s), " ")
}

// describe renders a client error without the request URL, whose path or
// query may hold a token.
func describe(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}

// isDialError reports whether the connection could not be made, so the
// request was certainly not sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// redactURL keeps scheme and host: paths and queries of upstream URLs may
// hold tokens, and user info holds passwords.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}
