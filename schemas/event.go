// Package schemas publishes the gateway's data contracts: the canonical event
// that every backend receives, and the three provider envelopes it is built
// from. Each is a Go type with validator tags; the canonical event is also
// published as a JSON Schema document (canonical-event.schema.json).
package schemas

import (
	"encoding/json"
	"time"
)

// SpecVersion is the CloudEvents version the gateway emits.
const SpecVersion = "1.0"

// ContentType is the media type of a canonical event in CloudEvents
// structured JSON mode.
const ContentType = "application/cloudevents+json"

// Event is the canonical event: a CloudEvents 1.0 event in structured JSON
// mode. Field order follows the CloudEvents spec so documents read naturally.
type Event struct {
	SpecVersion     string          `json:"specversion" validate:"required,eq=1.0"`
	ID              string          `json:"id" validate:"required,max=256"`
	Source          string          `json:"source" validate:"required,uri_reference"`
	Type            string          `json:"type" validate:"required,max=256"`
	Subject         string          `json:"subject,omitempty" validate:"omitempty,max=256"`
	Time            time.Time       `json:"time" validate:"required"`
	DataContentType string          `json:"datacontenttype" validate:"required,eq=application/json"`
	Data            json.RawMessage `json:"data" validate:"required"`

	// Extension attributes: lowercase letters and digits only (CloudEvents).

	// Provider names the envelope format the event came in.
	Provider string `json:"provider" validate:"required,oneof=openloyalty sublytics usaepay"`
	// ReceivedAt is when the gateway read the request.
	ReceivedAt time.Time `json:"receivedat" validate:"required"`
}
