// Package handlers is the gateway's request path: read, verify, normalize,
// deduplicate, store and deliver one provider request. It is plain Go so
// tests can drive it without Caddy; the caddymodule package wires it in.
package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// Mode selects how an accepted event reaches the backend.
type Mode string

const (
	// Async answers 202 once the event is durably stored; delivery workers
	// then own it.
	Async Mode = "async"
	// Sync hands the event to the next handler (normally reverse_proxy)
	// and answers after the backend has.
	Sync Mode = "sync"
)

// Outcomes reported to the Observer for each provider request.
const (
	OutcomeAccepted     = "accepted"
	OutcomeDuplicate    = "duplicate"
	OutcomeUnauthorized = "unauthorized"
	OutcomeInvalid      = "invalid"
	OutcomeTooLarge     = "too_large"
	OutcomeFailed       = "failed"
	OutcomeOverloaded   = "overloaded"
	OutcomeTimeout      = "timeout"
)

// DefaultMaxBodySize bounds a request body when none is configured. The
// loyalty platform's batches (up to 1000 items) stay well below it.
const DefaultMaxBodySize = 5 << 20

// StoreTimeout bounds each store call made for a request. Those calls do not
// end when the client hangs up (see detached), so they need a bound of
// their own; a group commit takes milliseconds, a store that needs longer is
// failing and the request is answered 503.
const StoreTimeout = 10 * time.Second

// Observer receives one call per provider request; the Caddy glue turns it
// into Prometheus counters.
type Observer interface {
	Received(provider, outcome string)
}

// Waker is told when new events are stored for asynchronous delivery, so
// the delivery workers wake at once instead of at their next poll.
type Waker interface {
	Notify()
}

// Next continues the handler chain; in Caddy it is the next handler's
// ServeHTTP.
type Next func(w http.ResponseWriter, r *http.Request) error

// Gateway handles one route's provider requests.
type Gateway struct {
	// Normalize holds the route's provider, source, type prefix and zone;
	// ReceivedAt is set per request.
	Normalize normalize.Options
	// Verifiers must all pass. A route meant to accept unauthenticated
	// requests says so with verify.None: the Caddy module refuses a route
	// without auth, so an empty list (which also accepts every request)
	// only comes from Go code building a Gateway itself.
	Verifiers []verify.Verifier
	// SecretHeaders are removed from the stored request headers, and from
	// the request once the gateway has answered.
	SecretHeaders []string
	// MaxBodySize is the largest body accepted, in bytes.
	MaxBodySize int64
	// MaxUnverified bounds the bytes that bodies not yet verified may hold
	// at once on this route; zero means DefaultMaxUnverified.
	MaxUnverified int64
	// MaxUnverifiedPerClient bounds the part of MaxUnverified that the
	// bodies of one client address may hold at once; zero means a quarter
	// of it, and never less than one body of MaxBodySize needs.
	MaxUnverifiedPerClient int64
	// UnverifiedTimeout bounds how long a body read before anything has
	// verified it may take to arrive, from the first read; zero means
	// DefaultUnverifiedTimeout.
	UnverifiedTimeout time.Duration
	// ClientAddr returns the address of the client that sent r, whose
	// share of MaxUnverified its body is counted against; nil, or an
	// empty answer, means the host of r.RemoteAddr. Behind a proxy that
	// is the proxy's, so the Caddy glue passes the client address Caddy
	// found through its trusted_proxies.
	ClientAddr func(r *http.Request) string
	// ForwardTimeout bounds one sync forward through the next handler;
	// zero means delivery.DefaultTimeout, as for an async attempt.
	ForwardTimeout time.Duration
	// Mode is Async or Sync.
	Mode Mode
	// Retention is how long a delivered event is kept.
	Retention time.Duration
	// Destinations are the route's async destinations: each event gets a
	// delivery to every one whose filter it matches (see deliveries), and
	// an event that matches none is stored unmatched. On a sync route they
	// are held until the sync delivery succeeds (store.StatusHeld).
	Destinations []Destination
	// SyncDestination names a sync route's own delivery, the forward
	// through the next handler; empty names it after the event's source.
	SyncDestination string
	// DedupWindow is how long an event of a provider without event ids
	// (the loyalty platform) keeps identical content from being accepted
	// again. Zero turns that dedup off: every such request is a new event.
	// On a route whose auth checks a signed timestamp it must be at least
	// the tolerance, or a captured request re-sent within the tolerance
	// would be a new event (the Caddy module refuses such a config).
	DedupWindow time.Duration
	// IDHeader, when set, names a request header carrying the sender's own
	// request id (X-Webhook-Request-Id); for a provider without event ids,
	// a request that has it takes it as its event id, deduplicated for the
	// whole retention. Unless RequestIDSigned, the request is also
	// deduplicated by content within DedupWindow, since anyone re-sending
	// a captured request can change an id that nothing signs.
	IDHeader string
	// RequestIDSigned says that a Verifier's signature covers the IDHeader
	// value (verify.HeaderSigner), so every accepted request carries the
	// id its sender signed. Such a request is deduplicated by that id
	// alone: two signed requests with the same content and distinct ids
	// are two real events.
	RequestIDSigned bool
	// Store keeps dedup keys and events.
	Store store.Store
	// Headers builds the delivery headers in sync mode, the same way the
	// async workers do.
	Headers *delivery.HeaderBuilder
	// Waker wakes the async workers; may be nil.
	Waker Waker
	// Observer counts requests; may be nil.
	Observer Observer
	// Logger must not be nil.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TrustTraceparent makes the ingest span a child of the request span
	// even when that span continues the trace of an incoming traceparent;
	// otherwise such a request's ingest span starts a new trace, linked to
	// the request span (see startIngest).
	TrustTraceparent bool

	budgetOnce sync.Once
	budget     *bodyBudget
	// records writes again, in the background, the sync deliveries the
	// store did not take at once (see recordDelivered).
	records recorder
}

// ServeHTTP runs the request path. It writes the provider's answer itself
// and returns an error only when the response could not be written.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request, next Next) error {
	provider := g.Normalize.Provider
	defer g.stripCredentials(r)
	// After the defer: credentials are stripped from the request Caddy
	// handed over, which the traced copy shares its header and URL with.
	r, tr := g.startIngest(r)
	defer tr.end()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		if r.ContentLength != 0 {
			closeUnread(w, r)
		}
		g.observe(tr, provider, OutcomeInvalid)
		return tr.refuse(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: webhooks are POSTed")
	}

	// Checks that need no body run before it is read: a request that fails
	// one is refused holding nothing. When they are all there is, the body
	// read next is an authenticated sender's and is not counted against the
	// budget for unverified bodies.
	bodyChecks := len(g.Verifiers) == 0
	var verifying step
	for _, v := range g.Verifiers {
		hv, ok := v.(verify.HeaderVerifier)
		if !ok {
			bodyChecks = true
			continue
		}
		if verifying.span == nil {
			_, verifying = tr.start(r.Context(), SpanVerify)
			verifying.setString(AttrStage, "headers")
		}
		if err := hv.VerifyHeaders(r); err != nil {
			closeUnread(w, r)
			return g.unauthorized(w, r, tr, verifying, provider, err)
		}
	}
	verifying.end()
	// A body no check has accepted yet is anybody's: it is read within the
	// route's time for it, and its buffer is taken from the route's budget
	// within its client address's share.
	var (
		budget *budgetShare
		timer  *readTimer
		client string
	)
	if bodyChecks {
		client = g.clientKey(r)
		budget = g.unverifiedBudget().share(client)
		timer = startReadTimer(w, g.unverifiedTimeout(), time.Time{})
	}
	_, reading := tr.start(r.Context(), SpanReadBody)
	body, held, err := readBody(r, g.maxBody(), budget, timer)
	timer.stop()
	reading.setInt(AttrBodySize, len(body))
	reading.end()
	if err != nil {
		budget.release(held)
		closeUnread(w, r)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			g.observe(tr, provider, OutcomeTooLarge)
			werr := tr.refuse(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body exceeds the limit of %d bytes", tooLarge.Limit))
			linger(w, r, r.ContentLength <= g.maxBody())
			return werr
		case errors.Is(err, ErrClientBudgetExhausted):
			g.Logger.Warn("webhook refused: too many unverified request bodies in flight from one client address",
				zap.String("remote", r.RemoteAddr), zap.String("client", client),
				zap.Int64("max_unverified_per_client", budget.budget.perClient))
			g.observe(tr, provider, OutcomeOverloaded)
			w.Header().Set("Retry-After", "1")
			return tr.refuse(w, http.StatusServiceUnavailable, "too many unverified request bodies in flight from your address; retry later")
		case errors.Is(err, ErrBudgetExhausted):
			g.Logger.Warn("webhook refused: too many unverified request bodies in flight",
				zap.String("remote", r.RemoteAddr), zap.Int64("max_unverified", budget.budget.limit))
			g.observe(tr, provider, OutcomeOverloaded)
			w.Header().Set("Retry-After", "1")
			return tr.refuse(w, http.StatusServiceUnavailable, "too many unverified request bodies in flight; retry later")
		case errors.Is(err, ErrBodyTimeout):
			g.Logger.Warn("webhook refused: unverified request body not received within unverified_timeout",
				zap.String("remote", r.RemoteAddr), zap.Duration("unverified_timeout", g.unverifiedTimeout()))
			g.observe(tr, provider, OutcomeTimeout)
			return tr.refuse(w, http.StatusRequestTimeout, "request body not received in time")
		case errors.Is(err, os.ErrDeadlineExceeded):
			g.Logger.Warn("webhook refused: request body cut by the server's read timeout",
				zap.String("remote", r.RemoteAddr))
			g.observe(tr, provider, OutcomeTimeout)
			return tr.refuse(w, http.StatusRequestTimeout, "request body not received in time")
		}
		g.Logger.Debug("reading request body", zap.Error(err))
		g.observe(tr, provider, OutcomeInvalid)
		return tr.refuse(w, http.StatusBadRequest, "reading request body: "+err.Error())
	}

	// Verify the bytes exactly as received, before any parsing: a forged
	// request must not reach the JSON decoder.
	verifying = step{}
	for _, v := range g.Verifiers {
		if _, checked := v.(verify.HeaderVerifier); checked {
			continue
		}
		if verifying.span == nil {
			_, verifying = tr.start(r.Context(), SpanVerify)
			verifying.setString(AttrStage, "body")
		}
		if err := v.Verify(r, body); err != nil {
			budget.release(held)
			return g.unauthorized(w, r, tr, verifying, provider, err)
		}
	}
	verifying.end()
	budget.release(held)

	now := g.now()
	opts := g.Normalize
	opts.ReceivedAt = now
	if g.IDHeader != "" {
		opts.RequestID = r.Header.Get(g.IDHeader)
	}
	_, normalizing := tr.start(r.Context(), SpanNormal)
	in, provider, err := g.ingest(r, body, opts, now)
	normalizing.setString(AttrProvider, provider)
	if err != nil {
		var inputErr *normalize.InputError
		if errors.As(err, &inputErr) {
			normalizing.fail(inputErr.Error())
			normalizing.end()
			if inputErr.Kind == normalize.KindTooLarge {
				g.observe(tr, provider, OutcomeTooLarge)
				return tr.refuse(w, http.StatusRequestEntityTooLarge, inputErr.Error())
			}
			g.observe(tr, provider, OutcomeInvalid)
			return tr.refuse(w, http.StatusBadRequest, inputErr.Error())
		}
		g.Logger.Error("building canonical events", zap.String("provider", provider), zap.Error(err))
		normalizing.fail("internal error")
		normalizing.end()
		g.observe(tr, provider, OutcomeFailed)
		return tr.refuse(w, http.StatusInternalServerError, "internal error")
	}
	tr.events(normalizing, in.Records)
	normalizing.end()

	if g.Mode == Sync {
		return g.serveSync(w, r, tr, provider, in, next)
	}
	return g.serveAsync(w, r.Context(), tr, provider, in)
}

func (g *Gateway) unauthorized(w http.ResponseWriter, r *http.Request, tr *ingestTrace, verifying step, provider string, err error) error {
	g.Logger.Warn("webhook rejected: verification failed",
		zap.String("remote", r.RemoteAddr), zap.String("reason", err.Error()))
	g.observe(tr, provider, OutcomeUnauthorized)
	// The span gets the provider's words, not the reason logged above.
	verifying.fail("unauthorized")
	verifying.end()
	return tr.refuse(w, http.StatusUnauthorized, "unauthorized")
}

// detached is the context for the work done on a body received in full:
// once the body is in, a client that hangs up (the loyalty platform does
// after a second, and never retries) must not cancel the store write, the
// forward or the record of the delivery, or the event would be lost. The
// request's values stay; d bounds the work instead of the client.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// serveAsync stores every new event durably and only then acknowledges.
func (g *Gateway) serveAsync(w http.ResponseWriter, ctx context.Context, tr *ingestTrace, provider string, in *store.Ingest) error {
	ctx, cancel := detached(ctx, StoreTimeout)
	defer cancel()
	results, err := g.insert(ctx, tr, in, true)
	if err != nil {
		// Nothing is acknowledged: the provider keeps the event and, if it
		// retries, gets another chance.
		g.Logger.Error("storing webhook", zap.String("provider", provider), zap.Error(err))
		g.observe(tr, provider, OutcomeFailed)
		return tr.refuse(w, http.StatusServiceUnavailable, "event could not be stored; retry later")
	}
	answers := make([]eventAnswer, len(in.Records))
	inserted := 0
	for i, res := range results {
		answers[i] = eventAnswer{ID: answerID(in.Records[i], res)}
		if res.Inserted {
			answers[i].Status = statusAccepted
			inserted++
		} else {
			answers[i].Status = statusDuplicate
		}
	}
	if inserted > 0 && g.Waker != nil {
		g.Waker.Notify()
	}
	if inserted == 0 {
		g.observe(tr, provider, OutcomeDuplicate)
		return tr.answer(w, http.StatusOK, statusDuplicate, answers)
	}
	g.observe(tr, provider, OutcomeAccepted)
	return tr.answer(w, http.StatusAccepted, statusAccepted, answers)
}

// serveSync reserves each event's dedup key, hands the event to the next
// handler and commits the key only on a 2xx from the backend.
func (g *Gateway) serveSync(w http.ResponseWriter, r *http.Request, tr *ingestTrace, provider string, in *store.Ingest, next Next) error {
	ctx, cancel := detached(r.Context(), StoreTimeout)
	results, err := g.insert(ctx, tr, in, false)
	cancel()
	if err != nil {
		g.Logger.Error("reserving webhook", zap.String("provider", provider), zap.Error(err))
		g.observe(tr, provider, OutcomeFailed)
		return tr.refuse(w, http.StatusServiceUnavailable, "event could not be stored; retry later")
	}

	answers := make([]eventAnswer, len(in.Records))
	delivered, duplicates, inFlight, failed := 0, 0, 0, 0
	for i, rec := range in.Records {
		answers[i] = eventAnswer{ID: answerID(rec, results[i])}
		if !results[i].Inserted {
			if results[i].Existing == store.StatusReserved {
				// Another request is delivering this event right now and
				// may still fail: answering "duplicate" could lose it.
				answers[i].Status = statusInProgress
				inFlight++
			} else {
				answers[i].Status = statusDuplicate
				duplicates++
			}
			continue
		}
		if failed > 0 {
			// Keep order within a batch: once one item failed, release the
			// rest so the provider's retry delivers them in sequence.
			g.release(r.Context(), rec, nil)
			answers[i].Status = statusFailed
			continue
		}
		if attempt, err := g.forward(r, tr, rec, next); err != nil {
			if errors.Is(err, ErrNoResponse) {
				g.Logger.Error("config error: nothing after webhook_gateway answered on this sync route (source); add reverse_proxy after it",
					zap.String("source", rec.Source), zap.String("id", rec.ID), zap.Error(err))
			} else {
				g.Logger.Warn("backend did not accept event",
					zap.String("source", rec.Source), zap.String("id", rec.ID), zap.Error(err))
			}
			g.release(r.Context(), rec, &attempt)
			answers[i].Status = statusFailed
			failed++
			continue
		}
		answers[i].Status = statusDelivered
		delivered++
	}

	if delivered > 0 && len(g.Destinations) > 0 && g.Waker != nil {
		// MarkDelivered made the async destinations' deliveries pending.
		g.Waker.Notify()
	}
	switch {
	case failed > 0:
		g.observe(tr, provider, OutcomeFailed)
		return tr.answer(w, http.StatusBadGateway, statusFailed, answers)
	case inFlight > 0:
		g.observe(tr, provider, OutcomeDuplicate)
		w.Header().Set("Retry-After", "1")
		return tr.answer(w, http.StatusConflict, statusInProgress, answers)
	case delivered == 0:
		g.observe(tr, provider, OutcomeDuplicate)
		return tr.answer(w, http.StatusOK, statusDuplicate, answers)
	default:
		g.observe(tr, provider, OutcomeAccepted)
		return tr.answer(w, http.StatusOK, statusDelivered, answers)
	}
}

// forward sends one canonical event through the rest of the route and
// records the outcome on the stored event. It returns nil when the backend
// answered 2xx, recorded yet or not (see recordDelivered); ErrNoResponse
// when nothing after this handler answered.
func (g *Gateway) forward(r *http.Request, tr *ingestTrace, rec *store.Record, next Next) (attempt store.Attempt, err error) {
	ctx, cancel := detached(r.Context(), g.forwardTimeout())
	defer cancel()
	ctx, forwarding := tr.start(ctx, SpanForward)
	forwarding.setString(AttrEventID, rec.ID)
	forwarding.setString(AttrEventType, rec.Type)
	rw := &captureWriter{header: make(http.Header)}
	defer func() {
		forwarding.forwarded(rw.status, err)
		forwarding.end()
	}()
	out := r.Clone(ctx)
	out.Method = http.MethodPost
	out.Body = io.NopCloser(bytes.NewReader(rec.Event))
	out.ContentLength = int64(len(rec.Event))
	out.TransferEncoding = nil
	g.redactPath(out)
	out.Header = g.Headers.Build(rec, 1, false, g.now())
	out.Header.Set("Content-Length", strconv.Itoa(len(rec.Event)))
	forwarding.injectForward(ctx, out.Header)

	start := g.now()
	err = next(rw, out)
	attempt = store.Attempt{Number: 1, At: start, Latency: g.now().Sub(start), Status: rw.status}
	if err != nil {
		attempt.Error = err.Error()
		return attempt, err
	}
	if rw.status == 0 {
		// Nothing wrote a response, so nothing reached a backend: Caddy
		// ends every route with a handler that writes nothing, which Go
		// would answer 200. Taking that for a delivery would store the
		// event delivered and make the provider's retry a duplicate.
		// Whether a handler follows cannot be known at load time: the
		// routes and matchers after this one decide it per request.
		attempt.Error = ErrNoResponse.Error()
		return attempt, ErrNoResponse
	}
	if attempt.Status < 200 || attempt.Status > 299 {
		return attempt, fmt.Errorf("backend answered %d", attempt.Status)
	}
	// The backend has the event: record it even if the forward used up its
	// time, so the provider's retry finds it delivered.
	g.recordDelivered(r.Context(), rec, attempt)
	return attempt, nil
}

// pathRedactor is a verifier whose secret travels in the request URL.
type pathRedactor interface {
	Redact(path string) string
	RedactQuery(rawQuery string) string
}

// redactPath removes secret path segments, and the same secrets from the
// query, so the backend, which the provider's secret must never reach, sees
// only the route.
func (g *Gateway) redactPath(r *http.Request) {
	for _, v := range g.Verifiers {
		if pr, ok := v.(pathRedactor); ok {
			u := *r.URL
			u.Path = pr.Redact(u.Path)
			u.RawPath = ""
			u.RawQuery = pr.RedactQuery(u.RawQuery)
			r.URL = &u
			r.RequestURI = u.RequestURI()
		}
	}
}

// stripCredentials removes the route's credentials from r once the
// gateway is done with it, accepted or refused: the secret headers are
// deleted, and a secret path segment or query part becomes Redacted. r is
// changed in place, as Caddy's rewrite handler changes it, so what reads the
// request after the gateway (a log_append field, an error route, the
// {http.request.*} placeholders) finds none of them. A refused request's
// credential is stripped too: a near miss or a retired secret is worth
// keeping out of sight as much as a valid one. Caddy's access log is out of
// reach: it records a copy of the request taken before any handler runs.
func (g *Gateway) stripCredentials(r *http.Request) {
	for _, h := range g.SecretHeaders {
		r.Header.Del(h)
	}
	if r.URL == nil {
		return
	}
	for _, v := range g.Verifiers {
		pr, ok := v.(pathRedactor)
		if !ok {
			continue
		}
		path, query := pr.Redact(r.URL.Path), pr.RedactQuery(r.URL.RawQuery)
		if path == r.URL.Path && query == r.URL.RawQuery {
			continue
		}
		// The redacted RawPath keeps the sender's escaping where it still
		// encodes the new Path; where it does not, EscapedPath ignores it.
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, pr.Redact(r.URL.RawPath), query
		r.RequestURI = r.URL.RequestURI()
	}
}

// release ends rec's reservation so the provider's retry gets through,
// keeping failed (the attempt the backend refused, nil for an item of a
// batch never forwarded) with the released record for the operator.
func (g *Gateway) release(ctx context.Context, rec *store.Record, failed *store.Attempt) {
	// Release even if the request was cancelled: a stale reservation would
	// block the provider's retry until its lease expires.
	ctx, cancel := detached(ctx, StoreTimeout)
	defer cancel()
	if err := g.Store.Release(ctx, rec.Source, rec.ID, rec.ReservedUntil, failed); err != nil {
		g.Logger.Error("releasing dedup reservation; the provider's retry waits for the lease to expire",
			zap.String("source", rec.Source), zap.String("id", rec.ID), zap.Error(err))
	}
}

// inspectedHeaders are the request headers kept with a stored event, in
// canonical form: what helps an operator see who sent a request and how,
// and none that carries a credential. Every other header is dropped, so
// Authorization, Proxy-Authorization, Cookie, signatures and whatever a
// client adds never reach the store.
var inspectedHeaders = []string{
	"Content-Type",
	"Content-Length",
	"Content-Encoding",
	"User-Agent",
	"X-Request-Id",
	"X-Correlation-Id",
	"Traceparent",
	"Tracestate",
	// The loyalty platform's hosted sender describes each request with
	// these; its X-Webhook-Signature is left out like any signature.
	"X-Webhook-Request-Id",
	"X-Webhook-Timestamp",
	"X-Webhook-Signature-Algorithm",
	"X-Webhook-Signature-Version",
	"X-Webhook-Version",
	// Standard Webhooks senders name and time each message; the
	// signature header is left out.
	"Webhook-Id",
	"Webhook-Timestamp",
}

// ingest normalizes body and builds the records to store, one event at a
// time, so that a large batch never exists as events and records at once.
// It returns the provider the body was read as.
func (g *Gateway) ingest(r *http.Request, body []byte, opts normalize.Options, now time.Time) (*store.Ingest, string, error) {
	headers := make(http.Header, len(inspectedHeaders))
	for _, name := range inspectedHeaders {
		if values, ok := r.Header[name]; ok {
			headers[name] = slices.Clone(values)
		}
	}
	// A route may name one of them as its secret header.
	for _, h := range g.SecretHeaders {
		headers.Del(h)
	}

	var errs evalErrors
	defer errs.log(g.Logger)
	in := &store.Ingest{RawBody: body}
	traceParent, traceState := eventTrace(r.Context())
	provider, err := normalize.Each(body, opts, func(ev *schemas.Event, contentKey string) error {
		ev.TraceParent, ev.TraceState = traceParent, traceState
		encoded, err := ev.AppendJSON(make([]byte, 0, ev.EncodedSize()))
		if err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
		rec := &store.Record{
			Source:      ev.Source,
			ID:          ev.ID,
			Provider:    ev.Provider,
			Type:        ev.Type,
			Subject:     ev.Subject,
			ReceivedAt:  now,
			Deliveries:  g.deliveries(ev, ev.Source, &errs),
			Event:       encoded,
			Headers:     headers,
			TraceParent: traceParent,
			TraceState:  traceState,
			BatchIndex:  len(in.Records),
			Retention:   g.Retention,
		}
		if contentKey != "" && g.DedupWindow > 0 && (opts.RequestID == "" || !g.RequestIDSigned) {
			rec.DedupKey, rec.DedupWindow = contentKey, g.DedupWindow
		}
		in.Records = append(in.Records, rec)
		return nil
	})
	if provider == "" {
		provider = g.Normalize.Provider
	}
	if err != nil {
		return nil, provider, err
	}
	for _, rec := range in.Records {
		rec.BatchSize = len(in.Records)
	}
	return in, provider, nil
}

// answerID is the id the provider is told: for a duplicate, the id of the
// event that was stored first, which is the one the backend has.
func answerID(rec *store.Record, res store.InsertResult) string {
	if !res.Inserted && res.ExistingID != "" {
		return res.ExistingID
	}
	return rec.ID
}

func (g *Gateway) maxBody() int64 {
	if g.MaxBodySize > 0 {
		return g.MaxBodySize
	}
	return DefaultMaxBodySize
}

func (g *Gateway) forwardTimeout() time.Duration {
	if g.ForwardTimeout > 0 {
		return g.ForwardTimeout
	}
	return delivery.DefaultTimeout
}

// unverifiedBudget is the route's budget for unverified bodies, made on
// first use so that a Gateway needs no constructor.
func (g *Gateway) unverifiedBudget() *bodyBudget {
	g.budgetOnce.Do(func() {
		limit := g.MaxUnverified
		if limit <= 0 {
			limit = DefaultMaxUnverified
		}
		perClient := g.MaxUnverifiedPerClient
		if perClient <= 0 {
			// The largest buffer a body of maxBody bytes takes is one byte
			// more, to see its end.
			perClient = max(limit/4, g.maxBody()+1)
		}
		g.budget = newBodyBudget(limit, perClient)
	})
	return g.budget
}

func (g *Gateway) unverifiedTimeout() time.Duration {
	if g.UnverifiedTimeout > 0 {
		return g.UnverifiedTimeout
	}
	return DefaultUnverifiedTimeout
}

// clientKey is the key of the client address r's unverified body counts
// against.
func (g *Gateway) clientKey(r *http.Request) string {
	if g.ClientAddr != nil {
		if addr := g.ClientAddr(r); addr != "" {
			return clientKey(addr)
		}
	}
	return clientKey(r.RemoteAddr)
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gateway) observe(tr *ingestTrace, provider, outcome string) {
	tr.outcome(provider, outcome)
	if g.Observer != nil {
		g.Observer.Received(provider, outcome)
	}
}
