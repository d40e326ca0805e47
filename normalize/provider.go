package normalize

import (
	"fmt"
	"slices"
	"strings"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Auto is the provider setting that detects the envelope from the body's
// top-level fields.
const Auto = "auto"

// A provider is one sender's envelope: how to recognise it, how to read it
// and what it is documented to send. Each provider is one file that
// declares its name, its envelope type and its reader, and registers itself
// from init. Detection, Normalize, the Caddy configuration check, the
// operator's filters and the simulator all read this registry (Providers,
// EventTypes, DerivesIDs), so a new provider needs nothing outside its file
// (and its fixtures) but its simulator file, harness/sim/gen_<name>.go.
type provider struct {
	// name is the provider's configuration name and the canonical event's
	// provider attribute: lowercase letters and digits.
	name string
	// envelope lists the members the envelope has, for error messages.
	envelope string
	// detect says how much env looks like this provider's envelope.
	detect func(env *envelope) claim
	// read turns a body detected or configured as this provider into
	// events, calling emit once per event in body order.
	read func(r *reader, emit emitFunc) *InputError
	// eventTypes are the event types its documentation names, in the
	// documents' order. Types outside the list are accepted too.
	eventTypes []string
	// derivesIDs is set for a provider that sends no event id of its own:
	// its events' ids are derived from their content (see ContentKey), and
	// the route's dedup window applies to them.
	derivesIDs bool
}

// claim is how strongly a body's top-level members point at one provider.
type claim int

const (
	claimNone claim = iota
	// claimWeak: a member the provider shares with others, with a value
	// only it uses (USAePay's "type": "event").
	claimWeak
	// claimMedium: a member name only it uses among the generic ones
	// ("data", "createdAt").
	claimMedium
	// claimStrong: a member name no other provider uses (webhook_*,
	// event_*). Two strong claims make a mixed body.
	claimStrong
)

// emitFunc receives one normalized event; key is its content key when the
// provider derives ids, else "". An error stops the reading.
type emitFunc func(ev *schemas.Event, key string) error

var registry []*provider

// register adds p; provider files call it from init.
func register(p *provider) {
	if !schemas.ValidAttributeName(p.name) || lookup(p.name) != nil || p.name == Auto {
		panic("normalize: bad or duplicate provider name " + p.name)
	}
	registry = append(registry, p)
	slices.SortFunc(registry, func(a, b *provider) int { return strings.Compare(a.name, b.name) })
	EventTypes[p.name] = p.eventTypes
}

func lookup(name string) *provider {
	for _, p := range registry {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Providers returns the registered provider names, sorted.
func Providers() []string {
	names := make([]string, len(registry))
	for i, p := range registry {
		names[i] = p.name
	}
	return names
}

// DerivesIDs reports whether provider sends no event id, so that its
// events get ids derived from their content (and a route's dedup window
// applies to them).
func DerivesIDs(provider string) bool {
	p := lookup(provider)
	return p != nil && p.derivesIDs
}

// EventTypes lists, per provider, every event type its documentation names,
// in the documents' order. Normalize accepts other types too (providers add
// them); this list is what a simulator should cover. Treat it as read-only.
var EventTypes = map[string][]string{}

// Documented reports whether eventType is in EventTypes[provider].
func Documented(provider, eventType string) bool {
	return slices.Contains(EventTypes[provider], eventType)
}

// knownProviders is the list an error message offers.
func knownProviders() string {
	names := append(Providers(), Auto)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// detect names the provider whose envelope env looks like most. mixed
// names two providers whose own member names both appear.
func detect(env *envelope) (best *provider, mixed []string) {
	top := claimNone
	for _, p := range registry {
		c := p.detect(env)
		switch {
		case c == claimNone || c < top:
		case c == top && c == claimStrong:
			mixed = append(mixed, p.name)
		case c > top:
			top, best, mixed = c, p, []string{p.name}
		}
	}
	if len(mixed) > 1 {
		return nil, mixed
	}
	return best, nil
}

// resolve picks the provider to read env as, given the route's setting.
func resolve(env *envelope, want string) (*provider, *InputError) {
	got, mixed := detect(env)
	if want == Auto {
		switch {
		case mixed != nil:
			return nil, envelopeErr("", env.body, -1, "body mixes the "+strings.Join(mixed, " and ")+" envelopes; expected one of them")
		case got == nil:
			return nil, envelopeErr("", env.body, -1, noEnvelope())
		}
		return got, nil
	}
	p := lookup(want)
	switch {
	case got == p || slices.Contains(mixed, want):
		// A mixed body is read as the configured provider; its own
		// required fields decide.
		return p, nil
	case got == nil:
		return nil, envelopeErr(want, env.body, -1, "body is not the "+want+" envelope: expected "+p.envelope)
	}
	return nil, envelopeErr(want, env.body, -1, "body is not the "+want+" envelope (it looks like "+got.name+"): expected "+p.envelope)
}

func noEnvelope() string {
	parts := make([]string, len(registry))
	for i, p := range registry {
		parts[i] = fmt.Sprintf("%s (%s)", p.name, p.envelope)
	}
	return "body matches no known envelope: expected the fields of " + strings.Join(parts, ", ")
}
