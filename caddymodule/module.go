// Package caddymodule registers the webhook gateway with Caddy: the
// http.handlers.webhook_gateway handler, its Caddyfile directive, and the
// sharing of one store per directory across config reloads. The request path
// itself lives in package handlers.
package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// Defaults.
const (
	defaultRetention = 7 * 24 * time.Hour
	maxRetryAfter    = time.Hour
	// defaultDedupWindow: see docs/decisions.md (events without an id).
	defaultDedupWindow = 30 * time.Second
	// eventAgeMargin keeps max_event_age this far inside the retention, so
	// that a time zone set wrong by up to a day cannot open a gap between
	// the dedup key's expiry and the age check.
	eventAgeMargin = 24 * time.Hour
)

// Handler receives provider webhooks on a route: it verifies them,
// deduplicates them by event id in a store (embedded Badger by default), normalizes them
// into CloudEvents 1.0 and delivers them to the merchant's backend.
type Handler struct {
	// Provider is the envelope format the route accepts: "openloyalty",
	// "sublytics", "usaepay", or "auto" to detect it from the body.
	// Default: auto.
	Provider string `json:"provider,omitempty"`

	// Source is the CloudEvents source of the route's events and the first
	// half of the dedup key. Default: "/<provider>", and "/auto" for a
	// route that detects its provider: the detected provider is in each
	// event's provider attribute, but a route whose credential accepts
	// every envelope must not write into the source (and the dedup keys)
	// of the route configured for that provider.
	Source string `json:"source,omitempty"`

	// ShareSource lets this route write its source although another route
	// of the same config writes it with different auth. Without it such a
	// config does not load: routes writing one source share its dedup keys
	// and the trust a backend puts in it, so the weaker credential could
	// forge the other route's events or pre-empt its genuine ones. Every
	// route writing the shared source with different auth must set it.
	// Routes with the same auth (one route under two host names) share a
	// source without it, whatever their stores.
	ShareSource bool `json:"share_source,omitempty"`

	// TypePrefix is prepended to the provider's event type, e.g.
	// "com.example.payments.".
	TypePrefix string `json:"type_prefix,omitempty"`

	// Route says where the route is configured, so that an error loading it
	// names it rather than its place in Caddy's route tree: the Caddyfile
	// adapter sets it to the directive's file and line ("Caddyfile:27").
	// A JSON config may set any label. Load errors carry it with the
	// route's source.
	Route string `json:"route,omitempty"`

	// TimeZone is the IANA zone in which zone-less provider times are read.
	// Default: UTC.
	TimeZone string `json:"time_zone,omitempty"`

	// MaxBodySize is the largest request body accepted, in bytes; a larger
	// one gets 413. Default: 5 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// MaxUnverified bounds the bytes that the route's request bodies may
	// hold at once while they are read and not yet verified, whoever sends
	// them; a request that would go past it gets 503 with Retry-After.
	// Buffers grow as bytes arrive, never from a declared Content-Length.
	// Default: 64 MiB.
	MaxUnverified int64 `json:"max_unverified,omitempty"`

	// MaxUnverifiedPerClient bounds the part of MaxUnverified that the
	// bodies of one client address may hold at once, so that one sender
	// cannot take the budget from the others; a request that would go past
	// it gets 503 with Retry-After. A client address is an IPv4 address or
	// an IPv6 /64, as Caddy sees the client: behind a proxy, the address
	// Caddy takes from the proxy's headers when the server's
	// trusted_proxies lists it, otherwise the proxy's own. Must be above
	// MaxBodySize and at most MaxUnverified. Default: a quarter of
	// MaxUnverified, and never less than a body of MaxBodySize needs.
	MaxUnverifiedPerClient int64 `json:"max_unverified_per_client,omitempty"`

	// UnverifiedTimeout bounds how long a body read before anything has
	// verified it (on a route whose checks need the body) may take to
	// arrive, counted from the first read: past it the read is cut, the
	// request gets 408 and the connection is closed, and its share of the
	// budget comes back. It only ever cuts reads short; the server's own
	// timeouts still apply. Default: 10s.
	UnverifiedTimeout caddy.Duration `json:"unverified_timeout,omitempty"`

	// StoreDir is the shorthand for a Badger store in this directory (see
	// webhook_gateway.stores.badger): routes naming the same directory
	// share one database. Default: "webhook_gateway" under Caddy's data
	// directory. Set StoreDir or Store, not both.
	StoreDir string `json:"store_dir,omitempty"`

	// Store is the store engine, a module of the webhook_gateway.stores
	// namespace named by its "engine" key, e.g.
	// {"engine": "badger", "dir": "/var/lib/webhooks"}. Routes whose
	// stores have the same engine and name share one store. Default: the
	// badger engine in StoreDir.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=webhook_gateway.stores inline_key=engine"`

	// Retention is how long a delivered event is kept (and so how long its
	// id is remembered for dedup). Pending and dead events are kept until
	// delivered, replayed or purged. Default: 168h.
	Retention caddy.Duration `json:"retention,omitempty"`

	// DedupWindow is how long identical content from a provider without
	// event ids (the loyalty platform) counts as the same event. Outside
	// the window the same body is a new event, with an id of its own: the
	// open-source loyalty sender's customer.updated carries only the
	// customer id, so a second real update looks exactly like the first.
	// 0 turns this dedup off. Default: 30s, or the largest timestamp
	// tolerance of the route's auth when that is longer, since a captured
	// request passes verification again for that long. An explicit value
	// shorter than that tolerance (0 included) does not load, unless the
	// signature covers the IDHeader value (see IDHeader).
	DedupWindow *caddy.Duration `json:"dedup_window,omitempty"`

	// IDHeader names a request header that carries the sender's own id for
	// the request, such as the hosted loyalty platform's
	// X-Webhook-Request-Id. For a provider without event ids, a request
	// with the header takes it as its event id, deduplicated for the whole
	// retention. When an hmac check signs the header ({header.<name>} in
	// its signed_content), that id is the request's only dedup key, and
	// the same content under another signed id is another event. Otherwise
	// anyone re-sending a captured request could change the id, so the
	// request is deduplicated by content within the dedup window as well.
	// Default: none.
	IDHeader string `json:"id_header,omitempty"`

	// MaxItems is the most items one loyalty batch may carry; a larger
	// batch gets 413. Default: 50000.
	MaxItems int `json:"max_items,omitempty"`

	// MaxEventAge refuses (400) an event whose own time, as the provider
	// wrote it, is older than this: a captured request replayed after its
	// dedup key expired must not be delivered again. Applies to providers
	// with event ids (usaepay, sublytics). 0 turns the check off. Default:
	// retention minus 24h (half the retention when that is 48h or less).
	MaxEventAge *caddy.Duration `json:"max_event_age,omitempty"`

	// Auth lists the checks a request must pass, all of them, on its raw
	// bytes before anything parses it: modules of the
	// http.handlers.webhook_gateway.auth namespace, named by "scheme"
	// (header, basic, hmac, path_secret, standard_webhooks, none). Each
	// check accepts several secrets so they can be rotated. Required: a
	// route without any entry does not load, and {"scheme": "none"} (which
	// nothing else may accompany) makes an open route explicit.
	Auth []json.RawMessage `json:"auth,omitempty" caddy:"namespace=http.handlers.webhook_gateway.auth inline_key=scheme"`

	// Deliver is "async" (answer 202 once the event is on disk; workers
	// deliver it to its destination with retries) or "sync" (hand the event
	// to the next handler, normally reverse_proxy, and answer after the
	// backend). Default: async when Upstreams or Destinations are set,
	// otherwise sync.
	//
	// In sync mode a handler that answers must follow: a request after
	// which nothing wrote a response (Caddy ends a route with a handler
	// that writes nothing) is answered 502, its reservation released, and
	// logged as a config error. That cannot be refused at load time: which
	// handler runs next is decided per request by the routes and matchers
	// that follow, and a handler is not shown them.
	Deliver string `json:"deliver,omitempty"`

	// Destinations are where the route's events are delivered
	// asynchronously, each by name with its own upstreams, signing secret,
	// workers, timeout, retry, filter and order (see Destination). An
	// event gets a delivery to every destination whose filter it matches,
	// decided once at ingest; one that matches none is stored as
	// unmatched. Every delivery is bound to its destination, so two routes
	// writing one source never deliver or replay each other's events. On
	// a sync route (deliver sync, then reverse_proxy) they are the async
	// destinations the event goes to once the backend behind
	// reverse_proxy has accepted it: never before, and once however often
	// the provider retries a failed forward. Set Destinations or
	// Upstreams, not both.
	Destinations []*Destination `json:"destinations,omitempty"`

	// Upstreams are the backend URLs async workers POST events to: with
	// SigningSecret, Workers, Timeout and Retry, the shorthand for one
	// destination named after the route's Source. The name stays the same
	// when the upstreams change, so a reload takes the pending events
	// along. Two routes writing one source with different upstreams (two
	// accounts of one provider) must name their destinations instead.
	Upstreams []string `json:"upstreams,omitempty"`

	// SigningSecret, a Standard Webhooks secret ("whsec_" + base64), makes
	// every delivery carry webhook-id, webhook-timestamp and
	// webhook-signature headers: the deliveries to the shorthand
	// destination, or in sync mode each forward. Placeholders are
	// resolved at load time.
	SigningSecret string `json:"signing_secret,omitempty"`

	// Retry configures the shorthand destination's redelivery.
	Retry *RetryConfig `json:"retry,omitempty"`

	// Rate limits the shorthand destination's deliveries, as a
	// destination's rate does.
	Rate string `json:"rate,omitempty"`

	// Breaker tunes the shorthand destination's circuit breaker, as a
	// destination's breaker does.
	Breaker *BreakerConfig `json:"breaker,omitempty"`

	// Workers is the number of concurrent deliveries to the shorthand
	// destination. Default: 16.
	Workers int `json:"workers,omitempty"`

	// Timeout bounds one delivery attempt: an async POST to an upstream
	// of the shorthand destination, or in sync mode one forward through
	// the next handler (which goes on if the provider hangs up, so that an
	// event received in full still reaches the backend). Default: 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// TrustTraceparent honours the trace context a provider sends. Under
	// Caddy's tracing handler the gateway's ingest span (and under it
	// verify, read_body, normalize, store and, in sync mode, each forward)
	// is a child of Caddy's request span. That span continues an incoming
	// traceparent, which anyone who can reach the route can write; so by
	// default, when a request carried one, the ingest span starts a new
	// trace of its own, linked to the request span, and the backend joins
	// that trace. With TrustTraceparent the ingest span stays a child of
	// the request span, in the provider's trace, as it does for a request
	// without a traceparent. Default: false.
	TrustTraceparent bool `json:"trust_traceparent,omitempty"`

	// TraceDeliveries traces the async deliveries and replays of events
	// stored by a traced request even before this process has served one:
	// until a request under Caddy's tracing shows Caddy's TracerProvider,
	// the delivery engines of this route's destinations make their spans
	// with the module's own, configured by the same OTEL_* variables. For
	// a gateway that restarts with retries pending, or one that delivers
	// events other gateways sharing a PostgreSQL store received. Events
	// stored by an untraced request get no spans either way. Default:
	// false (attempts are traced once a traced request has been served).
	TraceDeliveries bool `json:"trace_deliveries,omitempty"`

	gw        *handlers.Gateway
	db        store.Store
	storeName string                 // the store's name in the admin API
	engines   []*delivery.Engine     // one per destination, in Destinations' order
	config    *loadedConfig          // the config this handler is part of
	answers   *prometheus.CounterVec // a sync route's answers by status, its source's series
	logger    *zap.Logger
	cleanup   []func()
}

// RetryConfig bounds async redelivery. Delays grow exponentially with full
// jitter; a Retry-After from the backend is honoured.
type RetryConfig struct {
	// Attempts is the total number of attempts before an event is dead.
	// Default: 20.
	Attempts int `json:"attempts,omitempty"`
	// InitialDelay is the first backoff ceiling. Default: 1s.
	InitialDelay caddy.Duration `json:"initial_delay,omitempty"`
	// MaxDelay caps one backoff. Default: 1h.
	MaxDelay caddy.Duration `json:"max_delay,omitempty"`
	// MaxAge stops retrying an event this long after it was received.
	// Default: 72h.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
}

// BreakerConfig tunes a destination's circuit breaker. The breaker is
// always on: after Failures consecutive failed attempts (no response, a
// timeout, a 5xx or a 429; any other status shows the backend up) the
// destination is paused, and one delivery is sent as a probe after
// Cooldown, then after twice as long up to MaxCooldown, until one
// succeeds. While paused, no other delivery is attempted, so an outage
// spends no event's attempts or max_age.
type BreakerConfig struct {
	// Failures is the number of consecutive failed attempts that pause the
	// destination. Default: 5.
	Failures int `json:"failures,omitempty"`
	// Cooldown is the wait before the first probe. Default: 5s.
	Cooldown caddy.Duration `json:"cooldown,omitempty"`
	// MaxCooldown is the longest wait between two probes. Default: 1m (or
	// Cooldown when that is longer).
	MaxCooldown caddy.Duration `json:"max_cooldown,omitempty"`
}

// throttle returns the breaker's settings for the delivery engine.
func (b *BreakerConfig) throttle() throttle.BreakerConfig {
	if b == nil {
		return throttle.BreakerConfig{}
	}
	return throttle.BreakerConfig{Failures: b.Failures, Cooldown: time.Duration(b.Cooldown), MaxCooldown: time.Duration(b.MaxCooldown)}
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_gateway",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves secrets, opens (or shares) the store and builds the
// request path. Any failure stops the config from loading, so a route never
// runs with auth it could not set up; the error names the route.
func (h *Handler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return h.routeError(err)
	}
	return nil
}

// routeError says which route err is about. Caddy reports a handler's
// error under its place in the route tree ("route 0 ... subroute ...
// position 0"), which a user cannot map back to the config.
func (h *Handler) routeError(err error) error {
	source := h.Source
	if source == "" {
		// The default source, without the defaults that Validate may not
		// have checked yet.
		source = "/" + cmp.Or(h.Provider, normalize.Auto)
	}
	if h.Route != "" {
		return fmt.Errorf("configured at %s (source %s): %w", h.Route, source, err)
	}
	return fmt.Errorf("route with source %s: %w", source, err)
}

func (h *Handler) provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	var leave func()
	h.config, leave = joinConfig(ctx)
	h.cleanup = append(h.cleanup, leave)
	explicitWindow := h.DedupWindow != nil
	h.setDefaults()
	if err := h.validate(); err != nil {
		return err
	}
	loc, err := h.location()
	if err != nil {
		return err
	}

	claim, err := h.newSourceClaim()
	if err != nil {
		return fmt.Errorf("webhook_gateway: auth: %w", err)
	}
	verifiers, secretHeaders, err := h.loadAuth(ctx)
	if err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	idSigned := requestIDSigned(h.IDHeader, verifiers)
	dedupWindow, err := h.contentDedupWindow(verifiers, explicitWindow, idSigned)
	if err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	if err := h.claimSource(claim); err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	if err := h.claimDestinations(claim.route); err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	dests := h.destinations()
	routeDests, err := h.compiledDestinations()
	if err != nil {
		return err
	}

	headers, err := h.headerBuilder(caddy.NewReplacer())
	if err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}

	if err := h.provisionStore(ctx); err != nil {
		return err
	}

	h.gw = &handlers.Gateway{
		Normalize: normalize.Options{
			Provider:   h.Provider,
			Source:     h.source(),
			TypePrefix: h.TypePrefix,
			Location:   loc,
			MaxItems:   h.MaxItems,
			MaxAge:     time.Duration(*h.MaxEventAge),
		},
		DedupWindow:     dedupWindow,
		IDHeader:        h.IDHeader,
		RequestIDSigned: idSigned,
		Verifiers:       verifiers,
		SecretHeaders:   secretHeaders,
		MaxBodySize:     h.MaxBodySize,
		MaxUnverified:   h.MaxUnverified,
		ForwardTimeout:  time.Duration(h.Timeout),
		Mode:            handlers.Mode(h.Deliver),
		Retention:       time.Duration(h.Retention),
		Destinations:    routeDests,
		Store:           h.db,
		Headers:         headers,
		Logger:          h.logger,

		MaxUnverifiedPerClient: h.MaxUnverifiedPerClient,
		UnverifiedTimeout:      time.Duration(h.UnverifiedTimeout),
		ClientAddr:             clientIP,
		TrustTraceparent:       h.TrustTraceparent,
	}

	// Before the store is released: a sync delivery the backend accepted
	// may still be being recorded (see handlers.Gateway.Close).
	h.cleanup = append(h.cleanup, func() {
		ctx, cancel := context.WithTimeout(context.Background(), delivery.DefaultStopTimeout)
		defer cancel()
		if err := h.gw.Close(ctx); err != nil {
			h.logger.Error("unloading a sync route", zap.Error(err))
		}
	})

	// Metrics and the admin API's registry; see metrics.go and registry.go.
	if err := processMetrics.register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	h.gw.Observer = processMetrics
	processMetrics.watch(h.source(), h.Provider, h.gw.Mode)
	if h.gw.Mode == handlers.Sync {
		h.answers = processMetrics.syncAnswersOf(h.source())
	}

	if h.TraceDeliveries {
		// Released after the engines stop (cleanups run last first), so
		// their last spans are flushed.
		release, err := ownTracing.acquire()
		if err != nil {
			return fmt.Errorf("webhook_gateway: %w", err)
		}
		h.cleanup = append(h.cleanup, release)
	}
	for _, d := range dests {
		if err := h.startEngine(d); err != nil {
			return fmt.Errorf("webhook_gateway: destination %q: %w", d.Name, err)
		}
	}
	h.register()
	return nil
}

// setDefaults fills in the settings left out of the config; some defaults
// depend on other settings (max_event_age on retention, deliver on
// upstreams).
func (h *Handler) setDefaults() {
	if h.Provider == "" {
		h.Provider = normalize.Auto
	}
	if h.Retention <= 0 {
		h.Retention = caddy.Duration(defaultRetention)
	}
	if h.DedupWindow == nil {
		d := caddy.Duration(defaultDedupWindow)
		h.DedupWindow = &d
	}
	if h.MaxEventAge == nil {
		age := time.Duration(h.Retention) - eventAgeMargin
		if time.Duration(h.Retention) <= 2*eventAgeMargin {
			age = time.Duration(h.Retention) / 2
		}
		d := caddy.Duration(age)
		h.MaxEventAge = &d
	}
	if h.Deliver == "" {
		h.Deliver = string(handlers.Sync)
		if len(h.Upstreams) > 0 || len(h.Destinations) > 0 {
			h.Deliver = string(handlers.Async)
		}
	}
}

// location is the zone in which zone-less provider times are read.
func (h *Handler) location() (*time.Location, error) {
	if h.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(h.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("webhook_gateway: time_zone %q: %w", h.TimeZone, err)
	}
	return loc, nil
}

// provisionStore opens the route's store, or shares the one already open
// under its name, and releases it at Cleanup. Errors name the setting the
// store came from.
func (h *Handler) provisionStore(ctx caddy.Context) error {
	storeField := "store"
	if h.StoreRaw == nil {
		storeField = "store_dir"
	}
	engine, module, err := h.loadStore(ctx)
	if err != nil {
		return fmt.Errorf("webhook_gateway: %s: %w", storeField, err)
	}
	db, key, err := openStore(module, engine, h.logger)
	if err != nil {
		return fmt.Errorf("webhook_gateway: %s: %w", storeField, err)
	}
	h.db, h.storeName = db, engine.StoreName()
	h.cleanup = append(h.cleanup, func() { releaseStore(key, h.logger) })
	return nil
}

// source is the CloudEvents source of this route's events: the configured
// one, else normalize.DefaultSource ("/auto" for an auto route).
func (h *Handler) source() string {
	return cmp.Or(h.Source, normalize.DefaultSource(h.Provider))
}

// sources are the CloudEvents sources this route's events carry, which its
// delivery engine serves: its own source only, also on an auto route.
func (h *Handler) sources() []string {
	return []string{h.source()}
}

// startEngine starts this config's delivery workers for destination d.
// During a reload the old config's engine runs until its Cleanup; leases in
// the store keep the two from sending the same attempt.
func (h *Handler) startEngine(d *Destination) error {
	headers, err := signedHeaders(d.SigningSecret, caddy.NewReplacer())
	if err != nil {
		return err
	}
	// A backend's Retry-After is honoured up to an hour even when max_delay
	// is shorter: the backend knows when it can take traffic again.
	backoff := delivery.Backoff{MaxRetryAfter: maxRetryAfter}
	if r := d.Retry; r != nil {
		backoff.InitialDelay = time.Duration(r.InitialDelay)
		backoff.MaxDelay = time.Duration(r.MaxDelay)
		backoff.MaxAttempts = r.Attempts
		backoff.MaxAge = time.Duration(r.MaxAge)
		backoff.MaxRetryAfter = max(maxRetryAfter, backoff.MaxDelay)
	}
	var rate throttle.Rate
	if d.Rate != "" {
		if rate, err = throttle.ParseRate(d.Rate); err != nil {
			return fmt.Errorf("destination %q: rate: %w", d.Name, err)
		}
	}
	engine, err := delivery.New(delivery.Config{
		Store:       h.db,
		Destination: d.Name,
		Upstreams:   d.Upstreams,
		Workers:     d.Workers,
		Timeout:     time.Duration(d.Timeout),
		Backoff:     backoff,
		Rate:        rate,
		Breaker:     d.Breaker.throttle(),
		Headers:     headers,
		Logger:      h.logger.Named("delivery").With(zap.String("destination", d.Name)),
		Observer:    processMetrics,
		Tracing:     tracingFor(h.TraceDeliveries),
	})
	if err != nil {
		return err
	}
	if err := engine.Start(context.Background()); err != nil {
		return err
	}
	h.engines = append(h.engines, engine)
	h.gw.Waker = wakers(h.engines)
	// A store shared between processes also wakes the engine for events
	// other gateways stored for its destination (an empty name: wake to
	// catch up).
	if n, ok := h.db.(store.Notifier); ok {
		h.cleanup = append(h.cleanup, n.Subscribe(func(dest string) {
			if dest == "" || dest == d.Name {
				engine.Notify()
			}
		}))
	}
	h.cleanup = append(h.cleanup, func() {
		if err := engine.Stop(); err != nil {
			h.logger.Error("stopping delivery", zap.String("destination", d.Name), zap.Error(err))
		}
	})
	return nil
}

// wakers wakes the engines of every destination of a route.
type wakers []*delivery.Engine

// Notify implements handlers.Waker.
func (ws wakers) Notify() {
	for _, e := range ws {
		e.Notify()
	}
}

// Validate checks the configuration that needs no I/O; the error names the
// route.
func (h *Handler) Validate() error {
	if err := h.validate(); err != nil {
		return h.routeError(err)
	}
	return nil
}

func (h *Handler) validate() error {
	// The normalize registry is the list of providers; its error names
	// every registered one.
	if err := normalize.CheckOptions(normalize.Options{Provider: h.Provider}); err != nil {
		return fmt.Errorf("webhook_gateway: provider: %w", err)
	}
	// Normalize applies the same check to every request, so a value it
	// refuses would turn every webhook into a 500; checking one field at a
	// time lets the error name the directive.
	if err := normalize.CheckOptions(normalize.Options{Source: h.Source}); err != nil {
		return fmt.Errorf("webhook_gateway: source: %w", err)
	}
	if err := normalize.CheckOptions(normalize.Options{TypePrefix: h.TypePrefix}); err != nil {
		return fmt.Errorf("webhook_gateway: type_prefix: %w", err)
	}
	if h.DedupWindow != nil && *h.DedupWindow < 0 {
		return fmt.Errorf("webhook_gateway: dedup_window must not be negative, got %s", time.Duration(*h.DedupWindow))
	}
	if h.MaxEventAge != nil && *h.MaxEventAge < 0 {
		return fmt.Errorf("webhook_gateway: max_event_age must not be negative, got %s", time.Duration(*h.MaxEventAge))
	}
	if h.MaxItems < 0 {
		return fmt.Errorf("webhook_gateway: max_items must be positive, got %d", h.MaxItems)
	}
	if h.IDHeader != "" && !httpguts.ValidHeaderFieldName(h.IDHeader) {
		return fmt.Errorf("webhook_gateway: id_header %q is not a valid header name", h.IDHeader)
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("webhook_gateway: max_body_size must be positive, got %d", h.MaxBodySize)
	}
	if h.MaxUnverified < 0 {
		return fmt.Errorf("webhook_gateway: max_unverified must be positive, got %d", h.MaxUnverified)
	}
	maxBody := cmp.Or(h.MaxBodySize, handlers.DefaultMaxBodySize)
	if h.MaxUnverified > 0 && h.MaxUnverified <= maxBody {
		return fmt.Errorf("webhook_gateway: max_unverified (%d bytes) must be above the body limit (%d bytes), or a body that big could never be read", h.MaxUnverified, maxBody)
	}
	if h.MaxUnverifiedPerClient < 0 {
		return fmt.Errorf("webhook_gateway: max_unverified_per_client must be positive, got %d", h.MaxUnverifiedPerClient)
	}
	if h.MaxUnverifiedPerClient > 0 {
		if h.MaxUnverifiedPerClient <= maxBody {
			return fmt.Errorf("webhook_gateway: max_unverified_per_client (%d bytes) must be above the body limit (%d bytes), or a body that big could never be read", h.MaxUnverifiedPerClient, maxBody)
		}
		if budget := cmp.Or(h.MaxUnverified, handlers.DefaultMaxUnverified); h.MaxUnverifiedPerClient > budget {
			return fmt.Errorf("webhook_gateway: max_unverified_per_client (%d bytes) must not be above max_unverified (%d bytes)", h.MaxUnverifiedPerClient, budget)
		}
	}
	if h.UnverifiedTimeout < 0 {
		return fmt.Errorf("webhook_gateway: unverified_timeout must be positive, got %s", time.Duration(h.UnverifiedTimeout))
	}
	switch handlers.Mode(h.Deliver) {
	case handlers.Sync:
		if len(h.Upstreams) > 0 {
			return fmt.Errorf("webhook_gateway: upstreams are used by async delivery; in sync mode put reverse_proxy after webhook_gateway")
		}
		if h.TraceDeliveries {
			return fmt.Errorf("webhook_gateway: trace_deliveries traces async delivery; a sync route's forward is traced with its request")
		}
	case handlers.Async:
	default:
		return fmt.Errorf("webhook_gateway: deliver %q: want sync or async", h.Deliver)
	}
	return h.validateDestinations()
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	w = h.config.closeIfSuperseded(w, r)
	deliveryTracing.see(r)
	if h.gw.Mode == handlers.Sync {
		return serveSync(h.answers, h.gw, w, r, next.ServeHTTP)
	}
	return h.gw.ServeHTTP(w, r, next.ServeHTTP)
}

// clientIP is the client address Caddy found for r: the remote address, or
// behind a proxy listed in the server's trusted_proxies, the one the proxy
// passed on.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Cleanup stops delivery (async workers, and the background records of
// sync deliveries, each given up to 10s) and releases this config's hold on
// the store.
func (h *Handler) Cleanup() error {
	for i := len(h.cleanup) - 1; i >= 0; i-- {
		h.cleanup[i]()
	}
	h.cleanup = nil
	return nil
}

// headerBuilder builds the headers of a sync route's forwards.
func (h *Handler) headerBuilder(repl *caddy.Replacer) (*delivery.HeaderBuilder, error) {
	if handlers.Mode(h.Deliver) != handlers.Sync {
		return delivery.NewHeaderBuilder(nil), nil // each destination signs its own
	}
	return signedHeaders(h.SigningSecret, repl)
}

// signedHeaders builds delivery headers signed with secret (unsigned when
// it is empty), its placeholders resolved.
func signedHeaders(secret string, repl *caddy.Replacer) (*delivery.HeaderBuilder, error) {
	if secret == "" {
		return delivery.NewHeaderBuilder(nil), nil
	}
	resolved, err := repl.ReplaceOrErr(secret, true, true)
	if err != nil {
		return nil, fmt.Errorf("signing_secret: %w", err)
	}
	signer, err := delivery.NewSigner(resolved)
	if err != nil {
		return nil, fmt.Errorf("signing_secret: %w", err)
	}
	return delivery.NewHeaderBuilder(signer), nil
}
