package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// A Provider is how the simulator plays one provider: the bodies it sends
// and how it sends them. Each provider's file (gen_<name>.go) registers one
// from init with Register. Its name, event types and whether it sends event
// ids are those of its normalize registration; everything left unset here
// takes a plain default (Config.Concurrency senders, DefaultTimeout, one
// attempt, no options), so a new provider needs no more than a Generate.
type Provider struct {
	// Name is the provider's name in the normalize registry.
	Name string
	// Generate builds one body of eventType, one of EventTypes[Name]. It
	// runs with the generator locked, so it may use the generator's random
	// source and its own state (Generator.State). The generator fills in
	// the event's Provider and Type, and Items when it is 0.
	Generate func(g *Generator, eventType string) *Event
	// State, if set, makes the provider's state for a new generator (the
	// entities its bodies name, its id counter); Generate reads it back
	// with Generator.State.
	State func(g *Generator) any
	// Redeliver, if set, returns the same logical event as e re-encoded the
	// way this provider does it beyond key order and layout (the
	// subscription platform's id in its other JSON form). It runs with the
	// generator locked. Unset, a redelivery only changes key order and
	// layout.
	Redeliver func(g *Generator, e *Event) *Event
	// Workers, if set, is how many requests the provider has in flight at
	// once; unset means Config.Concurrency. A provider that sends Bursts
	// has one sender.
	Workers func(cfg *Config) int
	// MaxConns, if set, caps the provider's connections to a gateway.
	MaxConns func(cfg *Config) int
	// Timeout, if set, bounds one attempt; unset means DefaultTimeout.
	Timeout func(cfg *Config) time.Duration
	// Bursts sends Config.BurstSize bodies back to back, then pauses for
	// Config.BurstPause.
	Bursts bool
	// Retry, if set, is the delay before the provider tries again after
	// the given failed attempt (1 for the first): a timeout, a network
	// error or a 4xx/5xx. false means it gives up. Unset, it never retries.
	Retry func(cfg *Config, attempt int) (time.Duration, bool)
	// Repeats are the event types whose bodies carry nothing unique to the
	// notification, so that a real second update is the first body byte
	// for byte; Config.RepeatShare sends them again after RepeatAfter.
	Repeats []string
	// Options are the provider's settings on the emit command line:
	// credentials and its own delivery knobs.
	Options []Option
}

// An Option is one of a provider's settings on the emit command line, e.g.
// the payment gateway's --usaepay-user. The command offers the options of
// every registered provider.
type Option struct {
	// Name is the flag's name, without dashes.
	Name string
	// Type names the kind of value in the help: "string", "duration",
	// "int" or "float".
	Type string
	// Default is the value when the flag is not given.
	Default string
	// Env, if set, is read when the flag is empty, so that a secret need
	// not appear in a process listing.
	Env string
	// Usage is the flag's help.
	Usage string
	// Apply puts value into the run's configuration: into cfg, and into pc,
	// the provider's own settings, which is nil when the run does not
	// simulate the provider.
	Apply func(cfg *Config, pc *ProviderConfig, value string) error
}

// registry holds the registered providers sorted by name. Providers
// register from init functions; it is only read afterwards.
var registry []*Provider

// Register adds p to the simulated providers. Call it from an init
// function, once the provider is registered with normalize; a missing
// Generate, a name normalize does not know, or a second registration of a
// name panics.
func Register(p Provider) {
	switch {
	case p.Generate == nil:
		panic("sim: provider " + p.Name + " has no Generate")
	case !slices.Contains(normalize.Providers(), p.Name):
		panic("sim: provider " + p.Name + " is not registered with normalize")
	case lookup(p.Name) != nil:
		panic("sim: provider " + p.Name + " registered twice")
	}
	registry = append(registry, &p)
	slices.SortFunc(registry, func(a, b *Provider) int { return strings.Compare(a.Name, b.Name) })
}

func lookup(name string) *Provider {
	for _, p := range registry {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Providers returns the names of the simulated providers, sorted.
func Providers() []string {
	names := make([]string, len(registry))
	for i, p := range registry {
		names[i] = p.Name
	}
	return names
}

// OptionsOf returns the command-line options of a simulated provider.
func OptionsOf(provider string) []Option {
	if p := lookup(provider); p != nil {
		return slices.Clone(p.Options)
	}
	return nil
}

// parseOption reads an option's value into dst, an *int, *float64 or
// *time.Duration.
func parseOption(dst any, value string) error {
	var err error
	switch d := dst.(type) {
	case *int:
		*d, err = strconv.Atoi(value)
	case *float64:
		*d, err = strconv.ParseFloat(value, 64)
	case *time.Duration:
		*d, err = time.ParseDuration(value)
	default:
		panic(fmt.Sprintf("sim: option into %T", dst))
	}
	return err
}
