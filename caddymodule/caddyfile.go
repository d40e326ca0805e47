package caddymodule

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("webhook_gateway", parseCaddyfile)
	// Before respond, so a route may end with `respond` or `reverse_proxy`
	// without a global order option.
	httpcaddyfile.RegisterDirectiveOrder("webhook_gateway", httpcaddyfile.Before, "respond")
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	// The directive's own token: its file and line name the route. Caddy
	// hands a directive its own tokens only (the matcher taken out, the
	// site block out of reach), and the line leads the reader to both.
	h.Next()
	tok := h.Token()
	h.Reset()
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	if err == nil && handler.Route == "" {
		handler.Route = fmt.Sprintf("%s:%d", tok.File, tok.Line)
	}
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	webhook_gateway [<matcher>] [<provider>] {
//	    provider       openloyalty|sublytics|usaepay|auto
//	    source         <uri-reference>
//	    share_source
//	    type_prefix    <prefix>
//	    time_zone      <IANA zone>
//	    max_body       <size>
//	    max_unverified <size>
//	    max_unverified_per_client <size>
//	    unverified_timeout <duration>
//	    store_dir      <path>
//	    store          <engine> [<args>...] [{ ... }]
//	    retention      <duration>
//	    dedup_window   <duration>|off
//	    id_header      <header>
//	    max_items      <n>
//	    max_event_age  <duration>|off
//	    auth header    <name> <value>...
//	    auth basic     <username> <password>
//	    auth hmac      <key>... {
//	        header           <name>
//	        hash             sha256|sha1|sha512
//	        encoding         hex|base64|base64url
//	        prefix           <prefix>
//	        format           plain|stripe|standard_webhooks
//	        key_encoding     raw|base64
//	        timestamp_header <name>
//	        tolerance        <duration>
//	        signed_content   <template>
//	        algorithm_header <name>
//	    }
//	    auth path_secret <secret>...
//	    auth standard_webhooks <whsec_...>... {
//	        tolerance <duration>
//	    }
//	    auth none
//	    deliver        sync|async
//	    upstream       <url>...
//	    signing_secret <whsec_...>
//	    workers        <n>
//	    timeout        <duration>
//	    trust_traceparent
//	    trace_deliveries
//	    retry {
//	        attempts      <n>
//	        initial_delay <duration>
//	        max_delay     <duration>
//	        max_age       <duration>
//	    }
//	    rate <events>/<period>
//	    breaker {
//	        failures     <n>
//	        cooldown     <duration>
//	        max_cooldown <duration>
//	    }
//	    destination <name> {
//	        upstream       <url>...
//	        signing_secret <whsec_...>
//	        workers        <n>
//	        timeout        <duration>
//	        retry { ... }
//	        rate <events>/<period>
//	        breaker { ... }
//	        types    <glob>...
//	        filter   <CEL expression>
//	        order_by subject|<CEL expression>
//	    }
//	    destination <name> { ... }
//	}
//
// The route-level upstream, signing_secret, workers, timeout, retry, rate
// and breaker are the shorthand for one destination named after the
// route's source; a destination block names it and holds the same
// settings instead, and a route may have several (fan-out). A sync route
// keeps signing_secret and timeout at the route level for its forwards;
// its destination blocks are the async destinations that get each event
// once the forward has succeeded.
//
// Each auth line is parsed by its scheme's module (auth_<scheme>.go).
// Repeated "auth basic" lines, and "auth header" lines naming the same
// header, add accepted credentials to one check (rotation); other lines are
// checks of their own, which must all pass. A route needs at least one auth
// line; "auth none" makes an open route explicit.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Provider = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}

	var schemes []AuthScheme
	for d.NextBlock(0) {
		switch d.Val() {
		case "provider":
			if err := oneArg(d, &h.Provider); err != nil {
				return err
			}
		case "source":
			if err := oneArg(d, &h.Source); err != nil {
				return err
			}
		case "share_source":
			if d.NextArg() {
				return d.Errf("share_source: takes no arguments")
			}
			h.ShareSource = true
		case "trust_traceparent":
			if d.NextArg() {
				return d.Errf("trust_traceparent: takes no arguments")
			}
			h.TrustTraceparent = true
		case "trace_deliveries":
			if d.NextArg() {
				return d.Errf("trace_deliveries: takes no arguments")
			}
			h.TraceDeliveries = true
		case "type_prefix":
			if err := oneArg(d, &h.TypePrefix); err != nil {
				return err
			}
		case "time_zone":
			if err := oneArg(d, &h.TimeZone); err != nil {
				return err
			}
		case "store_dir":
			if err := oneArg(d, &h.StoreDir); err != nil {
				return err
			}
		case "store":
			raw, err := storeModuleJSON(d)
			if err != nil {
				return err
			}
			h.StoreRaw = raw
		case "signing_secret":
			if err := oneArg(d, &h.SigningSecret); err != nil {
				return err
			}
		case "deliver":
			if err := oneArg(d, &h.Deliver); err != nil {
				return err
			}
			if h.Deliver != "sync" && h.Deliver != "async" {
				return d.Errf("deliver: want sync or async, got %q", h.Deliver)
			}
		case "max_body":
			size, err := sizeArg(d)
			if err != nil {
				return err
			}
			h.MaxBodySize = size
		case "max_unverified":
			size, err := sizeArg(d)
			if err != nil {
				return err
			}
			h.MaxUnverified = size
		case "max_unverified_per_client":
			size, err := sizeArg(d)
			if err != nil {
				return err
			}
			h.MaxUnverifiedPerClient = size
		case "unverified_timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.UnverifiedTimeout = dur
		case "retention":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Retention = dur
		case "dedup_window":
			dur, err := durationOrOffArg(d)
			if err != nil {
				return err
			}
			h.DedupWindow = &dur
		case "max_event_age":
			dur, err := durationOrOffArg(d)
			if err != nil {
				return err
			}
			h.MaxEventAge = &dur
		case "id_header":
			if err := oneArg(d, &h.IDHeader); err != nil {
				return err
			}
		case "max_items":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			h.MaxItems = n
		case "timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Timeout = dur
		case "workers":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			h.Workers = n
		case "upstream":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Upstreams = append(h.Upstreams, args...)
		case "auth":
			var err error
			if schemes, err = unmarshalAuth(d, schemes); err != nil {
				return err
			}
		case "retry":
			if err := unmarshalRetry(d, &h.Retry); err != nil {
				return err
			}
		case "rate":
			if err := oneArg(d, &h.Rate); err != nil {
				return err
			}
		case "breaker":
			if err := unmarshalBreaker(d, &h.Breaker); err != nil {
				return err
			}
		case "destination":
			dest, err := unmarshalDestination(d)
			if err != nil {
				return err
			}
			h.Destinations = append(h.Destinations, dest)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	if len(schemes) > 0 {
		h.Auth = authJSON(schemes)
	}
	return nil
}

// unmarshalDestination reads a destination block:
//
//	destination <name> {
//	    upstream       <url>...
//	    signing_secret <whsec_...>
//	    workers        <n>
//	    timeout        <duration>
//	    retry { ... }
//	    rate <events>/<period>
//	    breaker { ... }
//	    types    <glob>...
//	    filter   <CEL expression>
//	    order_by subject|<CEL expression>
//	}
func unmarshalDestination(d *caddyfile.Dispenser) (*Destination, error) {
	dest := new(Destination)
	if err := oneArg(d, &dest.Name); err != nil {
		return nil, err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "upstream":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			dest.Upstreams = append(dest.Upstreams, args...)
		case "signing_secret":
			if err := oneArg(d, &dest.SigningSecret); err != nil {
				return nil, err
			}
		case "workers":
			n, err := positiveIntArg(d)
			if err != nil {
				return nil, err
			}
			dest.Workers = n
		case "timeout":
			dur, err := durationArg(d)
			if err != nil {
				return nil, err
			}
			dest.Timeout = dur
		case "retry":
			if err := unmarshalRetry(d, &dest.Retry); err != nil {
				return nil, err
			}
		case "rate":
			if err := oneArg(d, &dest.Rate); err != nil {
				return nil, err
			}
		case "breaker":
			if err := unmarshalBreaker(d, &dest.Breaker); err != nil {
				return nil, err
			}
		case "types":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			dest.Types = append(dest.Types, args...)
		case "filter":
			if dest.Filter != "" {
				return nil, d.Errf("destination %s: filter given twice; join the conditions with &&", dest.Name)
			}
			expr, err := expressionArg(d)
			if err != nil {
				return nil, err
			}
			dest.Filter = expr
		case "order_by":
			if dest.OrderBy != "" {
				return nil, d.Errf("destination %s: order_by given twice", dest.Name)
			}
			expr, err := expressionArg(d)
			if err != nil {
				return nil, err
			}
			dest.OrderBy = expr
		default:
			return nil, d.Errf("destination %s: unrecognized option %q", dest.Name, d.Val())
		}
	}
	return dest, nil
}

// expressionArg reads a CEL expression written as the rest of the line,
// as Caddy's expression matcher reads one: a single token (a backquoted
// `...` or quoted "..." expression, or one without spaces) is taken
// without its quotes; several are joined with spaces, quotes kept, so
// that event.type == "x" needs no quoting of its own.
func expressionArg(d *caddyfile.Dispenser) (string, error) {
	if d.CountRemainingArgs() > 1 {
		return strings.Join(d.RemainingArgsRaw(), " "), nil
	}
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	return d.Val(), nil
}

func unmarshalBreaker(d *caddyfile.Dispenser, dst **BreakerConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if *dst == nil {
		*dst = new(BreakerConfig)
	}
	b := *dst
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "failures":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			b.Failures = n
		case "cooldown":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			b.Cooldown = dur
		case "max_cooldown":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			b.MaxCooldown = dur
		default:
			return d.Errf("breaker: unrecognized option %q", d.Val())
		}
	}
	return nil
}

func unmarshalRetry(d *caddyfile.Dispenser, dst **RetryConfig) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if *dst == nil {
		*dst = new(RetryConfig)
	}
	r := *dst
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "attempts":
			n, err := positiveIntArg(d)
			if err != nil {
				return err
			}
			r.Attempts = n
		case "initial_delay":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			r.InitialDelay = dur
		case "max_delay":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			r.MaxDelay = dur
		case "max_age":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			r.MaxAge = dur
		default:
			return d.Errf("retry: unrecognized option %q", d.Val())
		}
	}
	return nil
}

// oneArg reads exactly one argument for the current subdirective.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: missing value", name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: too many arguments", name)
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: invalid duration %q", name, raw)
	}
	return caddy.Duration(dur), nil
}

// durationOrOffArg reads a duration where "off" (or 0) turns a check off.
func durationOrOffArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	if raw == "off" || raw == "0" {
		return 0, nil
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: want a positive duration or off, got %q", name, raw)
	}
	return caddy.Duration(dur), nil
}

// sizeArg reads a size in bytes ("10MB", "512KiB"); zero, and sizes beyond
// int64, are refused.
func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(raw)
	if err != nil || size == 0 || size > math.MaxInt64 {
		return 0, d.Errf("%s: invalid size %q", name, raw)
	}
	return int64(size), nil
}

func positiveIntArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive integer, got %q", name, raw)
	}
	return n, nil
}
