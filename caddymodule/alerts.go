package caddymodule

import (
	"cmp"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/alerts"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func init() {
	caddy.RegisterModule(App{})
	httpcaddyfile.RegisterGlobalOption("webhook_gateway", parseGlobalOption)
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

// App holds the gateway's settings that belong to the process rather than
// to one route: today, where operator events go. It is the Caddyfile
// global option
//
//	{
//		webhook_gateway {
//			alerts https://oncall.example.com/hooks/gateway
//		}
//	}
//
// Operator events are the gateway's, not a route's: a destination is
// paused or resumed, a delivery goes dead, a lane is parked, whichever
// route it belongs to, and an on-call tool wants one feed. So the URL is
// one per gateway, not per route.
type App struct {
	// Alerts is the URL operator events are POSTed to, as structured
	// CloudEvents (application/cloudevents+json): types
	// com.webhookgw.destination.paused and .resumed (data: destination,
	// by "breaker" or "operator"), com.webhookgw.event.dead (source, id,
	// destination, reason) and com.webhookgw.lane.parked (destination,
	// lane, and the source and id of the dead head). They are queued in
	// memory (at most 1000), tried up to 8 times each with a delay growing
	// from 1s to 1m, and dropped beyond that: sending them never delays a
	// delivery. Empty: no operator events are sent.
	Alerts string `json:"alerts,omitempty"`
	// AlertsSource is the CloudEvents source of the operator events.
	// Default: "/webhook-gateway/<host name>", so that several gateways
	// feeding one on-call tool are told apart.
	AlertsSource string `json:"alerts_source,omitempty"`

	sender *alerts.Sender
	ctx    caddy.Context
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "webhook_gateway",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the alerts URL.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	if a.Alerts == "" {
		return nil
	}
	host, _ := os.Hostname()
	s, err := alerts.New(alerts.Config{
		URL:    a.Alerts,
		Source: cmp.Or(a.AlertsSource, "/webhook-gateway/"+cmp.Or(host, "unknown")),
		Logger: ctx.Logger(),
	})
	if err != nil {
		return fmt.Errorf("webhook_gateway: %w", err)
	}
	a.sender = s
	return nil
}

// activeSender is the sender of the running config's App, if it has an
// alerts URL. During a reload the new config's App takes over at its
// Start, before the old one stops.
var activeSender atomic.Pointer[alerts.Sender]

// Start makes this config's alerts URL the one operator events go to.
func (a *App) Start() error {
	activeSender.Store(a.sender)
	return nil
}

// Stop lets the sender go, unless a newer config's has taken over.
func (a *App) Stop() error {
	if a.sender == nil {
		return nil
	}
	activeSender.CompareAndSwap(a.sender, nil)
	return a.sender.Close()
}

// alert queues an operator event, when an alerts URL is configured.
func alert(typ, subject string, data any) {
	if s := activeSender.Load(); s != nil {
		s.Send(alerts.Event{Type: typ, Subject: subject, Data: data})
	}
}

// pauseAlert is the data of a paused or resumed event.
type pauseAlert struct {
	Destination string `json:"destination"`
	// By is "breaker" (consecutive failures, or the probe that answered)
	// or "operator".
	By string `json:"by"`
}

func alertPaused(destination, by string) {
	alert(alerts.TypeDestinationPaused, destination, pauseAlert{destination, by})
}

func alertResumed(destination, by string) {
	alert(alerts.TypeDestinationResumed, destination, pauseAlert{destination, by})
}

// deadAlert is the data of an event dead.
type deadAlert struct {
	Source      string           `json:"source"`
	ID          string           `json:"id"`
	Destination string           `json:"destination"`
	Reason      store.DeadReason `json:"reason"`
}

func alertDead(source, id, destination string, reason store.DeadReason) {
	alert(alerts.TypeEventDead, source+" "+id, deadAlert{source, id, destination, reason})
}

// laneAlert is the data of a lane parked.
type laneAlert struct {
	Destination string `json:"destination"`
	Lane        string `json:"lane"`
	Source      string `json:"source"`
	ID          string `json:"id"`
}

func alertLaneParked(destination, lane, source, id string) {
	alert(alerts.TypeLaneParked, destination, laneAlert{destination, lane, source, id})
}

// parseGlobalOption reads the webhook_gateway global option:
//
//	webhook_gateway {
//		alerts <url>
//		alerts_source <source>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	a := new(App)
	d.Next() // the option's name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "alerts":
			if !d.AllArgs(&a.Alerts) {
				return nil, d.ArgErr()
			}
		case "alerts_source":
			if !d.AllArgs(&a.AlertsSource) {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unknown webhook_gateway option %q: want alerts or alerts_source", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "webhook_gateway", Value: caddyconfig.JSON(a, nil)}, nil
}
