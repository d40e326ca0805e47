// Package harness drives the gateway end to end from the emitting side: a
// provider simulator (package sim) posts webhooks to the gateway, a merchant
// sink (package sink) receives the canonical events, and a report (package
// report) says what was acknowledged, delivered, lost or doubled.
//
// Run ties the three together for tests and the README's demo; EmitCommand
// and SinkCommand expose them as CLI subcommands.
package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/report"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Scenario is one end-to-end run against a gateway.
type Scenario struct {
	// Gateway is the gateway's base URL; it fills Sim.BaseURL when that is
	// empty.
	Gateway string
	// Sim configures the simulated providers.
	Sim sim.Config
	// Sink configures the sink Run starts. When neither Validate nor
	// Schema is set, deliveries are validated against the published
	// canonical event schema.
	Sink sink.Config
	// SinkAddr is where Run's sink listens; empty means a free loopback
	// port.
	SinkAddr string
	// UseSink is an already running sink; Run then neither starts nor
	// stops one and ignores Sink and SinkAddr. Its earlier deliveries
	// count too, so Reset it between runs.
	UseSink *sink.Server
	// SinkReady runs once the sink listens and before anything is sent:
	// the place to point the gateway's upstream at sinkURL.
	SinkReady func(ctx context.Context, sinkURL string) error
	// Wait bounds how long Run waits for acknowledged events to arrive.
	Wait report.WaitOptions
	// Second, when set, is a sink for a second destination of the
	// gateway's routes (a fan-out): Run starts it too, and the report's
	// Second says whether every acknowledged event of its providers
	// reached it exactly once.
	Second *SecondSink
}

// SecondSink is the sink of a second destination.
type SecondSink struct {
	// Name labels its report ("second destination" when empty).
	Name string
	// Addr is where it listens; empty means a free loopback port.
	Addr string
	// Providers are the providers whose routes deliver to it; empty means
	// every provider.
	Providers []string
	// Sink configures it, as Scenario.Sink does the first.
	Sink sink.Config
	// Use is an already running sink; Run then neither starts nor stops
	// one and ignores Addr and Sink.
	Use *sink.Server
}

// sendsOf are the sends of providers (all of them when providers is
// empty).
func sendsOf(sends []sim.Send, providers []string) []sim.Send {
	if len(providers) == 0 {
		return sends
	}
	var out []sim.Send
	for _, s := range sends {
		if slices.Contains(providers, s.Provider) {
			out = append(out, s)
		}
	}
	return out
}

// NewSink builds a sink that validates against the canonical event schema,
// with the provider one of the gateway's (normalize.Providers), unless cfg
// already sets a validator or schema.
func NewSink(cfg sink.Config) (*sink.Sink, error) {
	if cfg.Validate == nil && cfg.Schema == nil {
		v, err := schemas.NewJSONSchemaValidator(normalize.Providers()...)
		if err != nil {
			return nil, err
		}
		cfg.Validate = v
	}
	return sink.New(cfg)
}

// BuildReport compares a simulator's sends with a sink snapshot.
func BuildReport(sends []sim.Send, snap *sink.Snapshot) *report.Report {
	in := report.Input{Sends: sends}
	if snap != nil {
		in.HasSink = true
		in.Deliveries = snap.Deliveries
		in.SinkStats = snap.Stats
	}
	return report.Build(in)
}

// Run starts a sink on loopback (unless UseSink is set), calls SinkReady,
// runs the simulator against the gateway, waits until every acknowledged
// event has reached the sink (or sc.Wait's timeout passes), and returns the
// report. When the wait times out, the report comes back with an error
// wrapping report.ErrIncomplete; a test should print report.Table() then.
func Run(ctx context.Context, sc Scenario) (*report.Report, error) {
	if sc.Sim.BaseURL == "" {
		sc.Sim.BaseURL = sc.Gateway
	}
	s, err := sim.New(sc.Sim)
	if err != nil {
		return nil, err
	}
	srv := sc.UseSink
	if srv == nil {
		sk, err := NewSink(sc.Sink)
		if err != nil {
			return nil, err
		}
		srv, err = sink.Listen(sc.SinkAddr, sk)
		if err != nil {
			return nil, err
		}
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdownCtx)
		}()
	}
	var second *sink.Server
	if sc.Second != nil && sc.Second.Use != nil {
		second = sc.Second.Use
	} else if sc.Second != nil {
		sk, err := NewSink(sc.Second.Sink)
		if err != nil {
			return nil, err
		}
		second, err = sink.Listen(sc.Second.Addr, sk)
		if err != nil {
			return nil, fmt.Errorf("harness: second sink: %w", err)
		}
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = second.Shutdown(shutdownCtx)
		}()
	}
	if sc.SinkReady != nil {
		if err := sc.SinkReady(ctx, srv.URL); err != nil {
			return nil, fmt.Errorf("harness: sink ready hook: %w", err)
		}
	}
	runErr := s.Run(ctx)
	build := func() (*report.Report, error) {
		snap := srv.Sink.Snapshot()
		r := BuildReport(s.Sends(), &snap)
		if second != nil {
			snap2 := second.Sink.Snapshot()
			r.Second = BuildReport(sendsOf(s.Sends(), sc.Second.Providers), &snap2)
			r.Second.Name = cmp.Or(sc.Second.Name, "second destination")
		}
		return r, nil
	}
	if runErr != nil {
		r, _ := build()
		return r, fmt.Errorf("harness: simulator: %w", runErr)
	}
	r, err := report.Wait(ctx, build, sc.Wait)
	if err != nil && !errors.Is(err, report.ErrIncomplete) {
		return r, fmt.Errorf("harness: %w", err)
	}
	return r, err
}
