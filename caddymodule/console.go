package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/webhookgw/caddy-webhook-gateway/console"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

func init() {
	caddy.RegisterModule(ConsoleHandler{})
	httpcaddyfile.RegisterHandlerDirective("webhook_gateway_console", parseConsoleCaddyfile)
	// Where Caddy orders its own metrics handler, which is mounted the
	// same way: after basic_auth and forward_auth, so those protect it.
	httpcaddyfile.RegisterDirectiveOrder("webhook_gateway_console", httpcaddyfile.After, "metrics")
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*ConsoleHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ConsoleHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ConsoleHandler)(nil)
	_ console.Stores              = liveTargets{}
)

// ConsoleHandler serves the operator console: a web page to find,
// inspect, replay and purge the events of the stores the loaded
// webhook_gateway routes use. It answers every request it gets, like
// Caddy's metrics handler: mount it on a route of its own, on a path
// ending in /* (its links are relative), and protect it with basic_auth or
// forward_auth, since it can replay and delete events.
type ConsoleHandler struct {
	// Refresh is how often the overview page refreshes its counts, in
	// whole seconds (at least one). Default: 5s.
	Refresh caddy.Duration `json:"refresh,omitempty"`

	console *console.Console
}

// CaddyModule returns the Caddy module information.
func (ConsoleHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_gateway_console",
		New: func() caddy.Module { return new(ConsoleHandler) },
	}
}

// Provision builds the console on the live registry, which it reads at
// request time: the gateway's routes may be provisioned after it.
func (h *ConsoleHandler) Provision(ctx caddy.Context) error {
	if h.Refresh < 0 {
		return fmt.Errorf("webhook_gateway_console: refresh must be positive, got %s", time.Duration(h.Refresh))
	}
	c, err := console.New(console.Config{Stores: liveTargets{live}, Refresh: time.Duration(h.Refresh), Logger: ctx.Logger()})
	if err != nil {
		return fmt.Errorf("webhook_gateway_console: %w", err)
	}
	h.console = c
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler; it never calls next.
func (h *ConsoleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.console.ServeHTTP(w, r)
	return nil
}

func parseConsoleCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var c ConsoleHandler
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return &c, err
}

// UnmarshalCaddyfile sets up the console from Caddyfile tokens. Syntax:
//
//	webhook_gateway_console [<matcher>] {
//	    refresh <duration>
//	}
func (h *ConsoleHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "refresh":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			h.Refresh = dur
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// liveTargets shows the console the stores of the loaded config.
type liveTargets struct{ reg *registry }

func (l liveTargets) Names() []string                        { return l.reg.names() }
func (l liveTargets) Target(name string) (ops.Target, error) { return l.reg.target(name) }
