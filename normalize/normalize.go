// Package normalize turns the three providers' envelopes into canonical
// events (CloudEvents 1.0). It is plain Go: no Caddy, no I/O.
package normalize

import (
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Provider names.
const (
	OpenLoyalty = "openloyalty"
	Sublytics   = "sublytics"
	USAePay     = "usaepay"
	// Auto detects the envelope from the body's top-level fields.
	Auto = "auto"
)

// Options configure one route's normalization.
type Options struct {
	// Provider is one of the provider names or Auto.
	Provider string
	// Source is the CloudEvents source; empty means "/<provider>".
	Source string
	// TypePrefix is prepended to the provider's event type.
	TypePrefix string
	// Location reads zone-less provider times; nil means UTC.
	Location *time.Location
	// ReceivedAt is when the request was read; it is the event time when
	// the provider gives none.
	ReceivedAt time.Time
}

// Normalize parses body and returns one canonical event, or one per item for
// a loyalty batch. Bad input yields an *InputError.
func Normalize(body []byte, opts Options) ([]schemas.Event, error) {
	panic("to be implemented")
}
