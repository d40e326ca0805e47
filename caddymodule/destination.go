package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/filter"
	"github.com/webhookgw/caddy-webhook-gateway/handlers"
)

// Destination is one place a route's events are delivered to
// asynchronously: its upstreams, the secret its deliveries are signed with,
// its own workers, timeout and retry policy, the events it takes (types,
// filter) and whether they go in order (order_by). A route may name
// several: each event gets a delivery to every destination whose filter
// it matches (fan-out), each delivery with its own status, attempts and
// schedule, bound to its destination by name; the destination's workers
// claim only its deliveries, and a replay goes to it with its upstreams
// and secret. A route's upstream, signing_secret, workers, timeout and
// retry at the route level are the shorthand for one destination named
// after the route's source, taking every event, unordered.
type Destination struct {
	// Name identifies the destination within the config and in the store:
	// letters, digits, ".", "_" and "-", starting with a letter or digit,
	// at most 64 characters. Events stored for it keep the name, so a
	// reload that gives the name other upstreams takes its pending events
	// along, and renaming a destination leaves its pending events to the
	// old name (replay them to the new one). Two routes naming one
	// destination must give it the same settings. Required.
	Name string `json:"name,omitempty"`

	// Upstreams are the backend URLs the destination's workers POST
	// events to, round-robin with failover when a connection cannot be
	// made. Required.
	Upstreams []string `json:"upstreams,omitempty"`

	// SigningSecret, a Standard Webhooks secret ("whsec_" + base64), makes
	// every delivery to this destination carry webhook-id,
	// webhook-timestamp and webhook-signature headers. Placeholders are
	// resolved at load time.
	SigningSecret string `json:"signing_secret,omitempty"`

	// Workers is the number of concurrent deliveries to this destination.
	// Default: 16.
	Workers int `json:"workers,omitempty"`

	// Timeout bounds one delivery attempt to this destination. Default:
	// 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Retry configures redelivery to this destination.
	Retry *RetryConfig `json:"retry,omitempty"`

	// Rate limits how fast deliveries to this destination start:
	// "<events>/<period>", the period s, m, h or a duration ("50/s",
	// "100/m", "5/10s"), with a burst of a tenth of a second's worth (1 to
	// 50). It is also the pace at which a backlog drains after the
	// destination was paused. The limit is per gateway process: N
	// gateways sharing a PostgreSQL store send up to N times the rate.
	// Default: no limit beyond workers.
	Rate string `json:"rate,omitempty"`

	// Breaker tunes the destination's circuit breaker, which is always on
	// (see BreakerConfig). Default: 5 failures, cooldown 5s, max_cooldown
	// 1m.
	Breaker *BreakerConfig `json:"breaker,omitempty"`

	// Types are the event types the destination takes: exact names or
	// globs where '*' matches any run of characters, dots included
	// ("transaction.sale.*", "*.voided"), matched against the type with
	// the route's type_prefix. Default: every type.
	Types []string `json:"types,omitempty"`

	// Filter is a CEL expression over the canonical event (event.type,
	// event.subject, event.data..., see docs/filters-and-throttling.md),
	// the language of Caddy's expression matcher: an event whose type
	// matches Types gets a delivery to this destination when it is true.
	// It is compiled when the config loads (an expression that does not
	// compile, or is not boolean, refuses the config with its position)
	// and evaluated once per event at ingest. Default: true.
	Filter string `json:"filter,omitempty"`

	// OrderBy makes the destination ordered: "subject" (the canonical
	// event's subject, the transaction or order an event is about) or a
	// CEL expression of a string or a number, such as
	// event.data.object.key. Deliveries with the same key form a lane and
	// go one at a time, in the order the gateway accepted them, each
	// carrying the CloudEvents sequence and partitionkey attributes;
	// different keys go in parallel. A lane whose head is dead is parked
	// until it is replayed or skipped. An event whose key is empty (no
	// subject), or cannot be evaluated, is delivered unordered. Default:
	// unordered.
	OrderBy string `json:"order_by,omitempty"`
}

// compile builds the request path's view of d: its filter and ordering
// key, compiled. Errors name the setting and, for an expression, the
// position in it.
func (d *Destination) compile() (handlers.Destination, error) {
	out := handlers.Destination{Name: d.Name}
	if len(d.Types) > 0 || d.Filter != "" {
		f, err := filter.Compile(filter.Config{Types: d.Types, Expression: d.Filter})
		if err != nil {
			// The error names the setting: "filter: types[0] ..." or
			// "filter: expression ...: line:column: ...".
			return out, fmt.Errorf("webhook_gateway: destination %q: %w", d.Name, err)
		}
		out.Filter = f
	}
	if d.OrderBy != "" {
		k, err := filter.CompileKey(d.OrderBy)
		if err != nil {
			return out, fmt.Errorf("webhook_gateway: destination %q: order_by: %w", d.Name, err)
		}
		out.OrderBy = k
	}
	return out, nil
}

// ErrDestinationConflict is wrapped by the Provision error of a route that
// gives a destination name settings another route of the same config gives
// it differently, or that leaves which destination is meant ambiguous.
var ErrDestinationConflict = errors.New("one destination name with different settings")

// maxDestinationName bounds a destination's name: it is shown in the
// console and typed on the command line.
const maxDestinationName = 64

var destinationName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// destinations are the route's async destinations: its destination blocks,
// or the shorthand destination its route-level upstreams make, named after
// its source (stable across an upstream change and a reload, and unique
// per source).
func (h *Handler) destinations() []*Destination {
	if len(h.Destinations) > 0 || len(h.Upstreams) == 0 {
		return h.Destinations
	}
	return []*Destination{{
		Name:          h.source(),
		Upstreams:     h.Upstreams,
		SigningSecret: h.SigningSecret,
		Workers:       h.Workers,
		Timeout:       h.Timeout,
		Retry:         h.Retry,
		Rate:          h.Rate,
		Breaker:       h.Breaker,
	}}
}

// shorthand reports whether the route names no destination: its upstreams
// at the route level are one destination named after its source.
func (h *Handler) shorthand() bool { return len(h.Destinations) == 0 }

// validateDestinations checks the route's destination settings (no I/O).
func (h *Handler) validateDestinations() error {
	if len(h.Destinations) == 0 {
		if handlers.Mode(h.Deliver) == handlers.Async && len(h.Upstreams) == 0 {
			return errors.New("webhook_gateway: async delivery needs at least one upstream, or a destination")
		}
		if len(h.Upstreams) > 0 {
			if err := checkUpstreams("", h.Upstreams); err != nil {
				return err
			}
			return checkThrottle(h.destinations()[0], "")
		}
		if h.Rate != "" || h.Breaker != nil {
			return errors.New("webhook_gateway: rate and breaker protect an async destination; this route has none")
		}
		return nil
	}
	async := handlers.Mode(h.Deliver) == handlers.Async
	for _, f := range []struct {
		set  bool
		name string
	}{
		{len(h.Upstreams) > 0, "upstream"},
		{h.SigningSecret != "" && async, "signing_secret"},
		{h.Workers != 0, "workers"},
		{h.Retry != nil, "retry"},
		{h.Rate != "", "rate"},
		{h.Breaker != nil, "breaker"},
		{h.Timeout != 0 && async, "timeout"},
	} {
		if f.set {
			return fmt.Errorf("webhook_gateway: %s at the route level is the shorthand for one destination; "+
				"a route with destination blocks sets it inside each destination", f.name)
		}
	}
	seen := map[string]bool{}
	for i, d := range h.Destinations {
		if d == nil {
			return fmt.Errorf("webhook_gateway: destination #%d is empty", i+1)
		}
		if !destinationName.MatchString(d.Name) || len(d.Name) > maxDestinationName {
			return fmt.Errorf("webhook_gateway: destination #%d: name %q: want letters, digits, '.', '_' and '-', "+
				"starting with a letter or digit, at most %d characters", i+1, d.Name, maxDestinationName)
		}
		if seen[d.Name] {
			return fmt.Errorf("webhook_gateway: destination %q is named twice in this route", d.Name)
		}
		if !async && d.Name == h.source() {
			return fmt.Errorf("webhook_gateway: destination %q: a sync route's own delivery (the forward) is named after its source; "+
				"give its async destination another name", d.Name)
		}
		seen[d.Name] = true
		if len(d.Upstreams) == 0 {
			return fmt.Errorf("webhook_gateway: destination %q needs at least one upstream", d.Name)
		}
		if err := checkUpstreams(d.Name, d.Upstreams); err != nil {
			return err
		}
		if d.Workers < 0 {
			return fmt.Errorf("webhook_gateway: destination %q: workers must be positive, got %d", d.Name, d.Workers)
		}
		if d.Timeout < 0 {
			return fmt.Errorf("webhook_gateway: destination %q: timeout must be positive", d.Name)
		}
		if err := checkThrottle(d, d.Name); err != nil {
			return err
		}
		if _, err := d.compile(); err != nil {
			return err
		}
	}
	return nil
}

// compiledDestinations are the route's destinations as the request path
// sees them (filters and ordering keys compiled). validate has checked
// that they compile.
func (h *Handler) compiledDestinations() ([]handlers.Destination, error) {
	dests := h.destinations()
	out := make([]handlers.Destination, 0, len(dests))
	for _, d := range dests {
		c, err := d.compile()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// checkThrottle refuses a malformed rate or breaker; dest names the
// destination in the error (empty: the route's own).
func checkThrottle(d *Destination, dest string) error {
	prefix := "webhook_gateway: "
	if dest != "" {
		prefix = fmt.Sprintf("webhook_gateway: destination %q: ", dest)
	}
	if d.Rate != "" {
		if _, err := throttle.ParseRate(d.Rate); err != nil {
			return fmt.Errorf("%srate: %w", prefix, err)
		}
	}
	if err := d.Breaker.throttle().Validate(); err != nil {
		return fmt.Errorf("%sbreaker: %w", prefix, err)
	}
	return nil
}

// checkUpstreams refuses an upstream that is not an absolute http(s) URL;
// dest names the destination in the error (empty: the route's own).
func checkUpstreams(dest string, upstreams []string) error {
	for _, u := range upstreams {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			if dest != "" {
				return fmt.Errorf("webhook_gateway: destination %q: upstream %q must be an absolute http or https URL", dest, u)
			}
			return fmt.Errorf("webhook_gateway: upstream %q must be an absolute http or https URL", u)
		}
	}
	return nil
}

// destClaim is one route's claim on a destination name within one loaded
// config. Settings are kept as keyed hashes (see authFingerprint), never the
// secret itself.
type destClaim struct {
	upstreams [sha256.Size]byte
	secret    [sha256.Size]byte
	settings  [sha256.Size]byte // workers, timeout, retry, rate and breaker
	shorthand bool              // named after the route's source, not by the route
	source    string
	route     string // how an error names the route
}

// newDestClaim describes this route's claim on d; route is how the
// route's source claim describes it (the auth entries are gone once
// loaded). The secret is resolved as the engine will resolve it, so the
// same secret written through two placeholders is the same.
func (h *Handler) newDestClaim(d *Destination, route string) (*destClaim, error) {
	secret, err := caddy.NewReplacer().ReplaceOrErr(d.SigningSecret, true, true)
	if err != nil {
		return nil, fmt.Errorf("destination %q: signing_secret: %w", d.Name, err)
	}
	// The filter is left out: two routes may send different events to
	// one place. The ordering key is the destination's: one lane key per
	// destination.
	settings, _ := json.Marshal(struct {
		Workers int
		Timeout caddy.Duration
		Retry   *RetryConfig
		Rate    string
		Breaker *BreakerConfig
		OrderBy string
	}{d.Workers, d.Timeout, d.Retry, d.Rate, d.Breaker, d.OrderBy})
	ups, _ := json.Marshal(d.Upstreams)
	return &destClaim{
		upstreams: keyedHash(ups),
		secret:    keyedHash([]byte(secret)),
		settings:  keyedHash(settings),
		shorthand: h.shorthand(),
		source:    h.source(),
		route:     h.describeForDestination(d, route),
	}, nil
}

func keyedHash(b []byte) [sha256.Size]byte {
	mac := hmac.New(sha256.New, fingerprintKey)
	mac.Write(b)
	var sum [sha256.Size]byte
	copy(sum[:], mac.Sum(nil))
	return sum
}

// describeForDestination names a route in a destination error: its source,
// provider and auth schemes (route), and upstream hosts (never paths, which
// may hold tokens).
func (h *Handler) describeForDestination(d *Destination, route string) string {
	hosts := make([]string, 0, len(d.Upstreams))
	for _, u := range d.Upstreams {
		hosts = append(hosts, redactUpstream(u))
	}
	desc := fmt.Sprintf("source %q, %s, upstream %s", h.source(), route, strings.Join(hosts, " "))
	if h.Route != "" {
		desc = "configured at " + h.Route + ": " + desc
	}
	return desc
}

func redactUpstream(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

// conflict says why two claims on one name cannot both stand, or returns
// "" when they can (the same destination, written in two routes).
func (cl *destClaim) conflict(other *destClaim) string {
	switch {
	case cl.upstreams != other.upstreams:
		return "different upstreams"
	case cl.secret != other.secret:
		return "different signing secrets"
	case cl.settings != other.settings:
		return "different workers, timeout, retry, rate, breaker or order_by settings"
	}
	return ""
}

// destinationError is the load error of a conflict on name.
func destinationError(name, why string, cl, other *destClaim) error {
	advice := "give one of them another name"
	if cl.shorthand && other.shorthand && cl.source == other.source {
		advice = fmt.Sprintf("both routes write source %q and set their upstreams at the route level, the shorthand for one destination "+
			`named after the source: name each route's destination (destination <name> { upstream ... } in the Caddyfile, `+
			`"destinations": [{"name": ...}] in JSON)`, cl.source)
	}
	return fmt.Errorf("destination %q: %w: %s (this route: %s; another route of this config: %s); "+
		"one destination name is one place to deliver to, and either route's workers would claim, and a replay would send, "+
		"the other route's events there: %s", name, ErrDestinationConflict, why, cl.route, other.route, advice)
}

// claimDestinations records the names this route's events are bound to in
// the config being loaded, or refuses the route (see
// ErrDestinationConflict); route describes the route (sourceClaim.route).
func (h *Handler) claimDestinations(route string) error {
	for _, d := range h.destinations() {
		cl, err := h.newDestClaim(d, route)
		if err != nil {
			return err
		}
		release, err := h.config.claimDestination(d.Name, cl)
		if err != nil {
			return err
		}
		h.cleanup = append(h.cleanup, release)
	}
	return nil
}
