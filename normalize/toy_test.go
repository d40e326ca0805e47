package normalize

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// This file is a fourth provider, written the way a provider's file is:
// its name, its envelope type, how it is detected and how it is read, and
// nothing else. TestToyProvider (toy_ext_test.go) gives it a simulator the
// way a simulator file does and shows that the rest of the gateway picks
// it up from the registry. A real provider registers from init; the toy
// registers for one test only, so that the other tests' lists of providers
// and error messages stay those of the real three.

// Toy is the toy provider's name.
const Toy = "toy"

// ToyEnvelope is the toy provider's webhook body:
//
//	{"toy_event": "toy.created", "toy_id": "...", "at": "2021-04-07T15:14:26Z",
//	 "payload": {"toy": "<subject>", ...}}
type ToyEnvelope struct {
	// Event is the event name.
	Event string `json:"toy_event" validate:"required,max=256,token"`
	// ID is the provider's event id.
	ID string `json:"toy_id" validate:"required,max=64,visibleascii"`
	// At is when the event happened, often absent.
	At string `json:"at,omitempty" validate:"omitempty,rfc3339"`
	// Payload is the data; payload.toy is the subject.
	Payload json.RawMessage `json:"payload" validate:"required,jsoncontainer"`
}

var toyProvider = &provider{
	name:     Toy,
	envelope: "toy_event, toy_id, payload and optionally at",
	detect: func(env *envelope) claim {
		if env.has("toy_event") || env.has("toy_id") {
			return claimStrong
		}
		return claimNone
	},
	read:       (*reader).toy,
	eventTypes: []string{"toy.created", "toy.broken"},
}

func (r *reader) toy(emit emitFunc) *InputError {
	var env ToyEnvelope
	var err *InputError
	if env.Event, err = r.str("toy_event", true); err != nil {
		return err
	}
	if env.ID, err = r.str("toy_id", true); err != nil {
		return err
	}
	if env.At, err = r.str("at", false); err != nil {
		return err
	}
	if env.Payload, err = r.container("payload", false); err != nil {
		return err
	}
	if err = r.check(&env); err != nil {
		return err
	}
	t := r.received
	if env.At != "" {
		at, perr := schemas.ParseRFC3339(env.At)
		if perr != nil {
			return r.fieldErr("at", r.env.offset("at"), "%v", perr)
		}
		t = at
	}
	if err = r.unique(env.Payload, "payload"); err != nil {
		return err
	}
	subject := subjectOf(jsonscan.Member(env.Payload, "toy"))
	return stopped(emit(r.event(normalizeID(env.ID), env.Event, subject, t, env.Payload), ""))
}

// RegisterToy registers the toy provider until tb ends. Tests that call it
// must not run in parallel with others: the registry is written once, at
// init, in a real binary.
func RegisterToy(tb testing.TB) {
	register(toyProvider)
	tb.Cleanup(func() {
		registry = slices.DeleteFunc(registry, func(p *provider) bool { return p == toyProvider })
		delete(EventTypes, Toy)
	})
}
