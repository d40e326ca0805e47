package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webhookgw/caddy-webhook-gateway/harness/report"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// EnvSinkSecret holds one or more whsec_ secrets, separated by spaces or
// commas, read when the sink's --secret flag is not given. The providers'
// secrets have variables of their own (sim.Option.Env).
const EnvSinkSecret = "WEBHOOK_SINK_SECRET"

// signalContext ends on SIGINT or SIGTERM, or when the command's own context
// does.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// sinkFlags registers the sink's options on fs with the given name prefix
// and returns a function that builds the config once flags are parsed.
func sinkFlags(fs *pflag.FlagSet, prefix string) func() (sink.Config, error) {
	var (
		secrets       []string
		noSchema      bool
		f             sink.Faults
		attemptHeader string
		replayHeader  string
	)
	fs.StringArrayVar(&secrets, prefix+"secret", nil, "Standard Webhooks signing secret (whsec_...) deliveries must be signed with; repeat for rotation (env "+EnvSinkSecret+")")
	fs.BoolVar(&noSchema, prefix+"no-schema", false, "skip JSON Schema validation of deliveries")
	fs.Float64Var(&f.FailShare, prefix+"fail-share", 0, "share of deliveries answered with --"+prefix+"fail-status (0-1)")
	fs.IntVar(&f.FailStatus, prefix+"fail-status", 503, "status of injected failures (5xx)")
	fs.DurationVar(&f.Latency, prefix+"latency", 0, "delay before every answer")
	fs.DurationVar(&f.LatencyJitter, prefix+"latency-jitter", 0, "random extra delay, up to this much")
	fs.DurationVar(&f.RefuseAfter, prefix+"refuse-after", 0, "start of the refusal window, from sink start")
	fs.DurationVar(&f.RefuseFor, prefix+"refuse-for", 0, "length of the refusal window (0: none)")
	fs.StringVar(&f.RefuseMode, prefix+"refuse-mode", sink.RefuseUnavailable, "how to refuse: 503 or close")
	fs.DurationVar(&f.RetryAfter, prefix+"retry-after", 0, "send Retry-After with every injected 5xx (rounded up to seconds)")
	fs.StringVar(&attemptHeader, prefix+"attempt-header", sink.DefaultAttemptHeader, "header carrying the gateway's attempt number")
	fs.StringVar(&replayHeader, prefix+"replay-header", sink.DefaultReplayHeader, "header marking an operator replay")
	return func() (sink.Config, error) {
		cfg := sink.Config{Faults: f, AttemptHeader: attemptHeader, ReplayHeader: replayHeader}
		cfg.Secrets = secrets
		if len(cfg.Secrets) == 0 {
			cfg.Secrets = strings.FieldsFunc(os.Getenv(EnvSinkSecret), func(r rune) bool { return r == ',' || r == ' ' })
		}
		if noSchema {
			// A validator that accepts everything keeps NewSink from
			// installing the schema.
			cfg.Validate = func([]byte) error { return nil }
		}
		return cfg, nil
	}
}

// SinkCommand is `sink`: a merchant backend that receives, checks and
// records canonical events until interrupted, with optional faults. Mount it
// under the caddy CLI as `caddy webhooks sink`.
func SinkCommand() *cobra.Command {
	var (
		listen     string
		statsEvery time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Run a merchant sink that receives, validates and records canonical events",
		Long: `Runs a merchant backend for the webhook gateway. Every POST (any path) is
parsed as a CloudEvents structured-mode event, validated against the
canonical JSON Schema, checked against the Standard Webhooks signature when
--secret is set, and recorded. Faults can be injected to exercise the
gateway's retries. GET ` + sink.ControlPrefix + `deliveries returns what was received
(used by "emit --sink-url"); POST ` + sink.ControlPrefix + `reset forgets it.`,
		Args: cobra.NoArgs,
	}
	buildCfg := sinkFlags(cmd.Flags(), "")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address to listen on")
	cmd.Flags().DurationVar(&statsEvery, "stats-every", 5*time.Second, "print counters this often (0: only at exit)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := buildCfg()
		if err != nil {
			return err
		}
		sk, err := NewSink(cfg)
		if err != nil {
			return err
		}
		srv, err := sink.Listen(listen, sk)
		if err != nil {
			return err
		}
		ctx, stop := signalContext(cmd)
		defer stop()
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "sink listening on %s (signature check: %v)\n", srv.URL, len(cfg.Secrets) > 0)
		var tick <-chan time.Time
		if statsEvery > 0 {
			t := time.NewTicker(statsEvery)
			defer t.Stop()
			tick = t.C
		}
		for done := false; !done; {
			select {
			case <-tick:
				printStats(out, sk.Stats())
			case <-ctx.Done():
				done = true
			}
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdownCtx)
		printStats(out, sk.Stats())
		return err
	}
	return cmd
}

func printStats(w io.Writer, st sink.Stats) {
	fmt.Fprintf(w, "requests=%d delivered=%d invalid=%d bad_signature=%d failed=%d refused=%d\n",
		st.Requests, st.Delivered, st.Invalid, st.BadSignature, st.Failed, st.Refused)
}

// parseProviderMap reads "provider=value" entries, rejecting unknown
// providers so a typo does not silently fall back to a default.
func parseProviderMap(flag string, m map[string]string) error {
	for p := range m {
		if !slices.Contains(sim.Providers(), p) {
			return fmt.Errorf("--%s: unknown provider %q (want %s)", flag, p, strings.Join(sim.Providers(), ", "))
		}
	}
	return nil
}

// optionValue holds a provider option's flag; Type names its kind in the
// help, its value is read by the option's Apply.
type optionValue struct {
	value string
	typ   string
}

func (v *optionValue) String() string     { return v.value }
func (v *optionValue) Set(s string) error { v.value = s; return nil }
func (v *optionValue) Type() string       { return v.typ }

// providerOption is one simulated provider's option and its flag.
type providerOption struct {
	provider string
	sim.Option
	flag *optionValue
}

// providerFlags registers every simulated provider's options (sim.Option)
// on fs.
func providerFlags(fs *pflag.FlagSet) []providerOption {
	var opts []providerOption
	for _, p := range sim.Providers() {
		for _, o := range sim.OptionsOf(p) {
			v := &optionValue{value: o.Default, typ: cmp.Or(o.Type, "string")}
			usage := o.Usage
			if o.Env != "" {
				usage += " (env " + o.Env + ")"
			}
			fs.Var(v, o.Name, usage)
			opts = append(opts, providerOption{provider: p, Option: o, flag: v})
		}
	}
	return opts
}

// applyProviderOptions puts the parsed provider options into cfg, once its
// providers are set.
func applyProviderOptions(cfg *sim.Config, opts []providerOption) error {
	for _, o := range opts {
		value := o.flag.value
		if value == "" && o.Env != "" {
			value = os.Getenv(o.Env)
		}
		var pc *sim.ProviderConfig
		if c, ok := cfg.Providers[o.provider]; ok {
			pc = &c
		}
		if err := o.Apply(cfg, pc, value); err != nil {
			return fmt.Errorf("--%s %s: %w", o.Name, o.flag.value, err)
		}
		if pc != nil {
			cfg.Providers[o.provider] = *pc
		}
	}
	return nil
}

// emitOptions are the flags of `emit`.
type emitOptions struct {
	cfg          sim.Config
	targets      []string
	providers    []string
	paths        map[string]string
	sources      map[string]string
	prefixes     map[string]string
	weights      map[string]string
	types        []string
	tz           string
	dedupWindow  time.Duration
	sinkListen   string
	sinkURL      string
	second       string
	secondProvs  []string
	waitFor      time.Duration
	settle       time.Duration
	asJSON       bool
	check        bool
	buildSink    func() (sink.Config, error)
	providerOpts []providerOption
}

// EmitCommand is `emit`: simulate the providers against a gateway and print
// a report. Mount it under the caddy CLI as `caddy webhooks emit`.
func EmitCommand() *cobra.Command {
	var o emitOptions
	cmd := &cobra.Command{
		Use:   "emit",
		Short: "Simulate the webhook providers against a gateway",
		Long: `Posts realistic webhooks of every documented event type to a gateway, with
each provider's authentication and delivery behaviour: the payment gateway
retries timeouts and 4xx/5xx on its 72-hour schedule (compressed by
--retry-scale) over up to 20 connections, the loyalty platform makes one
attempt with a 1 s timeout, the subscription platform sends bursts. A share
of events is re-sent as exact duplicates or as re-encoded redeliveries, and
a share of loyalty updates is repeated byte for byte after the route's dedup
window, as a real second update.

With --sink-listen, a sink runs in this process (point the gateway's
upstream at it); with --sink-url, the deliveries of a running
"sink" command are fetched. Either way the report then says what was
delivered, lost or doubled. Without both, only the gateway's answers are
reported.`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&o.targets, "target", []string{"http://127.0.0.1:8080"}, "gateway base URL; several (repeated or comma-separated) are sent to in turn, round robin")
	fs.StringSliceVar(&o.providers, "providers", sim.Providers(), "providers to simulate")
	fs.StringToStringVar(&o.paths, "path", nil, "route path per provider, e.g. usaepay=/hooks/usaepay (default /<provider>)")
	fs.StringToStringVar(&o.sources, "source", nil, "canonical source per provider, if the route sets one (default /<provider>; /auto on a route without a provider line)")
	fs.StringToStringVar(&o.prefixes, "type-prefix", nil, "type prefix per provider, if the route sets one")
	fs.StringToStringVar(&o.weights, "weight", nil, "relative share of events per provider (default 1 each)")
	fs.StringArrayVar(&o.types, "type", nil, "restrict a provider to an event type, provider=type; repeatable")
	fs.Float64Var(&o.cfg.Rate, "rate", 0, "logical events per second across providers (0: unlimited)")
	fs.IntVar(&o.cfg.Count, "count", 0, "number of logical events (default 100 when --duration is not set)")
	fs.DurationVar(&o.cfg.Duration, "duration", 0, "generate events for this long")
	fs.IntVar(&o.cfg.Concurrency, "concurrency", 8, "parallel senders per provider")
	fs.Float64Var(&o.cfg.DuplicateShare, "duplicates", 0.05, "share of events re-sent at once with the exact same body (0-1)")
	fs.Float64Var(&o.cfg.RedeliveryShare, "redeliveries", 0.05, "share of events re-sent re-encoded a little later (0-1)")
	fs.DurationVar(&o.cfg.RedeliveryDelay, "redelivery-delay", 200*time.Millisecond, "maximum delay of a redelivery")
	fs.Float64Var(&o.cfg.RepeatShare, "repeats", 0, "share of loyalty "+strings.Join(sim.RepeatTypes, "/")+" events sent again byte for byte after --repeat-after, as a real second update (0-1)")
	fs.DurationVar(&o.cfg.RepeatAfter, "repeat-after", 0, "delay of a repeat; must exceed --dedup-window (default: the window plus a fifth)")
	fs.DurationVar(&o.dedupWindow, "dedup-window", sim.DefaultDedupWindow, "the dedup_window of the routes of providers that send no event ids, like the loyalty platform (0: the route turns it off)")
	fs.IntVar(&o.cfg.Retry.Attempts, "retry-attempts", 0, "payment gateway: attempts per body, the first included (0: its whole schedule, 36)")
	fs.Float64Var(&o.cfg.Retry.Scale, "retry-scale", sim.DefaultRetryScale, "payment gateway: how many times faster than real time its 72-hour retry schedule runs")
	fs.IntVar(&o.cfg.BurstSize, "burst-size", 20, "subscription platform: events per burst")
	fs.DurationVar(&o.cfg.BurstPause, "burst-pause", 500*time.Millisecond, "subscription platform: pause between bursts")
	fs.StringVar(&o.tz, "tz", "UTC", "IANA zone the providers' zone-less times are written in")
	fs.Uint64Var(&o.cfg.Gen.Seed, "seed", 0, "seed for types, amounts and layouts (ids stay fresh); 0 is random")
	fs.StringVar(&o.sinkListen, "sink-listen", "", "run a sink in this process on this address, e.g. 127.0.0.1:9090")
	fs.StringVar(&o.sinkURL, "sink-url", "", "base URL of a running sink to fetch deliveries from")
	fs.StringVar(&o.second, "second-sink-listen", "", "with --sink-listen: also run a sink for a second destination on this address, and report whether each acknowledged event of --second-sink-providers reached it exactly once")
	fs.StringSliceVar(&o.secondProvs, "second-sink-providers", []string{"usaepay"}, "the providers whose routes deliver to the second destination")
	fs.DurationVar(&o.waitFor, "wait", 30*time.Second, "how long to wait for acknowledged events to reach the sink")
	fs.DurationVar(&o.settle, "settle", 500*time.Millisecond, "keep watching this long after all arrived, to catch doubles")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&o.check, "check", false, "exit with an error when anything was lost, doubled, unexpected or invalid")
	o.buildSink = sinkFlags(fs, "sink-")
	o.providerOpts = providerFlags(fs)

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.simConfig(); err != nil {
			return err
		}
		ctx, stop := signalContext(cmd)
		defer stop()
		r, rerr := o.run(ctx, cmd)
		if r == nil {
			return rerr
		}
		if err := writeReport(cmd.OutOrStdout(), r, o.asJSON); err != nil {
			return err
		}
		if rerr != nil && !errors.Is(rerr, report.ErrIncomplete) {
			return rerr
		}
		if o.check && (!r.OK() || rerr != nil) {
			return fmt.Errorf("check failed: %s", r.Problems())
		}
		return nil
	}
	return cmd
}

// simConfig checks the flags and completes o.cfg from them: targets,
// providers and their per-provider settings.
func (o *emitOptions) simConfig() error {
	if len(o.targets) == 0 {
		return errors.New("--target: at least one gateway is required")
	}
	cfg := &o.cfg
	cfg.BaseURL, cfg.Targets = o.targets[0], o.targets[1:]
	for _, m := range []struct {
		name string
		m    map[string]string
	}{{"path", o.paths}, {"source", o.sources}, {"type-prefix", o.prefixes}, {"weight", o.weights}} {
		if err := parseProviderMap(m.name, m.m); err != nil {
			return err
		}
	}
	if o.sinkListen != "" && o.sinkURL != "" {
		return errors.New("--sink-listen and --sink-url exclude each other")
	}
	loc, err := time.LoadLocation(o.tz)
	if err != nil {
		return fmt.Errorf("--tz: %w", err)
	}
	cfg.Gen.Location = loc
	cfg.Providers = map[string]sim.ProviderConfig{}
	for _, p := range o.providers {
		if !slices.Contains(sim.Providers(), p) {
			return fmt.Errorf("--providers: unknown provider %q (want %s)", p, strings.Join(sim.Providers(), ", "))
		}
		pc := sim.ProviderConfig{Path: o.paths[p], Source: o.sources[p], TypePrefix: o.prefixes[p]}
		if w, ok := o.weights[p]; ok {
			if pc.Weight, err = strconv.ParseFloat(w, 64); err != nil || pc.Weight <= 0 {
				return fmt.Errorf("--weight %s=%s: want a positive number", p, w)
			}
		}
		if normalize.DerivesIDs(p) {
			pc.DedupWindow = o.dedupWindow
			if o.dedupWindow == 0 {
				pc.DedupWindow = -1
			}
		}
		cfg.Providers[p] = pc
	}
	if err := applyProviderOptions(cfg, o.providerOpts); err != nil {
		return err
	}
	for _, t := range o.types {
		p, typ, ok := strings.Cut(t, "=")
		pc, enabled := cfg.Providers[p]
		if !ok || !enabled {
			return fmt.Errorf("--type %q: want provider=type for an enabled provider", t)
		}
		pc.Types = append(pc.Types, typ)
		cfg.Providers[p] = pc
	}
	return nil
}

// run sends the simulated webhooks and builds the report: against a sink
// in this process, a running sink's deliveries, or the gateway's answers
// alone. A report with an error (report.ErrIncomplete) is still printed.
func (o *emitOptions) run(ctx context.Context, cmd *cobra.Command) (*report.Report, error) {
	wait := report.WaitOptions{Timeout: o.waitFor, Settle: o.settle}
	if o.second != "" && o.sinkListen == "" {
		return nil, errors.New("--second-sink-listen needs --sink-listen: the second sink runs beside the first")
	}
	if o.sinkListen != "" {
		scfg, err := o.buildSink()
		if err != nil {
			return nil, err
		}
		var second *SecondSink
		if o.second != "" {
			second = &SecondSink{Name: "second destination (" + o.second + ": " + strings.Join(o.secondProvs, ", ") + ")",
				Addr: o.second, Providers: o.secondProvs, Sink: scfg}
		}
		return Run(ctx, Scenario{
			Sim: o.cfg, Sink: scfg, SinkAddr: o.sinkListen, Wait: wait, Second: second,
			SinkReady: func(_ context.Context, u string) error {
				fmt.Fprintf(cmd.ErrOrStderr(), "sink listening on %s\n", u)
				return nil
			},
		})
	}
	s, err := sim.New(o.cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Run(ctx); err != nil {
		return nil, err
	}
	sends := s.Sends()
	if o.sinkURL == "" {
		return BuildReport(sends, nil), nil
	}
	return report.Wait(ctx, func() (*report.Report, error) {
		snap, err := sink.Fetch(ctx, o.sinkURL)
		if err != nil {
			return nil, err
		}
		return BuildReport(sends, snap), nil
	}, wait)
}

// writeReport prints r as a table, or as JSON.
func writeReport(w io.Writer, r *report.Report, asJSON bool) error {
	if !asJSON {
		return r.WriteTable(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
