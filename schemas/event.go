// Package schemas publishes the gateway's data contract: the canonical event
// that every backend receives, as a Go type with validator tags and as a
// JSON Schema document (canonical-event.schema.json, exposed as
// CanonicalEventJSONSchema). The two descriptions are kept equivalent by
// the package tests: every event the normalizer emits passes both. It also
// holds the validator tags and field formats the providers' envelopes share;
// each envelope type lives with its provider in package normalize.
package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents version the gateway emits.
const SpecVersion = "1.0"

// ContentType is the media type of a canonical event in CloudEvents
// structured JSON mode.
const ContentType = "application/cloudevents+json"

// DataContentType is the media type of every canonical event's data: every
// provider sends JSON.
const DataContentType = "application/json"

// Limits shared by the validator tags and the JSON Schema. They are generous
// for real provider values and exist so that an id or a type can always be
// put into a store key, a log line or an HTTP header.
const (
	// MaxIDLength bounds the event id, in characters.
	MaxIDLength = 256
	// MaxTypeLength bounds the canonical type, prefix included.
	MaxTypeLength = 512
	// MaxSubjectLength bounds the subject; a longer provider object id is
	// dropped rather than rejected, since subject is optional.
	MaxSubjectLength = 256
	// MaxSourceLength bounds the configured source.
	MaxSourceLength = 1024
)

// Event is the canonical event: a CloudEvents 1.0 event in structured JSON
// mode. Field order follows the CloudEvents spec so documents read naturally.
//
// Every attribute name is lowercase letters and digits only, as CloudEvents
// requires of extension attributes (see ValidAttributeName).
type Event struct {
	// SpecVersion is always "1.0".
	SpecVersion string `json:"specversion" validate:"required,eq=1.0"`
	// ID is the provider's event id, or an id derived from the content when
	// the provider has none. Visible ASCII only, because it is sent as the
	// Idempotency-Key and webhook-id headers.
	ID string `json:"id" validate:"required,max=256,visibleascii"`
	// Source is the route's configured source, "/<provider>" by default.
	// Source plus ID is the deduplication key.
	Source string `json:"source" validate:"required,max=1024,uri_reference"`
	// Type is the provider's own event name with the route's optional prefix.
	Type string `json:"type" validate:"required,max=512,token"`
	// Subject is the id of the main object the event is about, when the
	// provider names one.
	Subject string `json:"subject,omitempty" validate:"omitempty,max=256,token"`
	// Time is when the event happened according to the provider, or the
	// receive time when the provider gives none. Always UTC.
	Time time.Time `json:"time" validate:"utc"`
	// DataContentType is always "application/json".
	DataContentType string `json:"datacontenttype" validate:"required,eq=application/json"`
	// Data is the provider's payload: a JSON object (or, for a provider that
	// encodes an empty map as [], an array).
	Data json.RawMessage `json:"data" validate:"required,jsondoc"`

	// Extension attributes.

	// Provider names the envelope format the event came in: the name of a
	// provider the normalize package registers (lowercase letters and
	// digits, see ValidAttributeName). The contract fixes the form, not
	// the list, so a new provider does not change it.
	Provider string `json:"provider" validate:"required,provider"`
	// ProviderEventID is the provider's own event id when the canonical id
	// is built from more than it (the subscription platform numbers events
	// per webhook type, so its canonical id is "<webhook_type>:<number>").
	ProviderEventID string `json:"providereventid,omitempty" validate:"omitempty,max=256,visibleascii"`
	// ReceivedAt is when the gateway read the request. Always UTC.
	ReceivedAt time.Time `json:"receivedat" validate:"utc"`
	// TraceParent and TraceState are the CloudEvents distributed tracing
	// extension: the W3C trace context of the gateway's span for the
	// request that brought the event, which is where the event's trace
	// starts. Set only when that request was traced; the same on every
	// delivery attempt and replay of the event (each of which names
	// itself in the W3C traceparent header instead).
	TraceParent string `json:"traceparent,omitempty" validate:"omitempty,traceparent"`
	TraceState  string `json:"tracestate,omitempty" validate:"omitempty,max=512,printascii"`
}

// AppendJSON appends e's JSON document to dst: the same fields, in the same
// order, as encoding/json writes them, with Data copied as it is rather than
// re-validated and compacted. For a 12 KB webhook that re-validation was
// almost all of the cost of encoding the event (48 µs). Data must therefore
// be well-formed JSON, as it is in every event Normalize returns (it is cut
// from a body the decoder has checked); MarshalJSON checks it.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	return e.appendJSON(dst, e.Data)
}

// EncodedSize is about the length AppendJSON writes: exact unless an
// attribute needs escaping. A caller encoding thousands of batch items
// sizes each buffer with it rather than with a fixed margin that would
// multiply a small item's memory.
func (e *Event) EncodedSize() int {
	// The member names, quotes and separators take at most 181 bytes; two
	// quoted RFC 3339 times with nanoseconds at most 35 bytes each.
	return 181 + 2*35 + len(e.SpecVersion) + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) +
		len(e.DataContentType) + len(e.Data) + len(e.Provider) + len(e.ProviderEventID) +
		len(e.TraceParent) + len(e.TraceState)
}

// MarshalJSON writes the document AppendJSON does, after checking Data, so
// that encoding/json and the gateway encode an event alike.
func (e *Event) MarshalJSON() ([]byte, error) {
	data := []byte(e.Data)
	switch {
	case data == nil:
		data = []byte("null") // as encoding/json writes a nil RawMessage
	case !json.Valid(data):
		return nil, errors.New("canonical event: data is not well-formed JSON")
	}
	return e.appendJSON(nil, data)
}

func (e *Event) appendJSON(dst, data []byte) ([]byte, error) {
	var err error
	dst = append(dst, `{"specversion":`...)
	dst = appendJSONString(dst, e.SpecVersion)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendJSONString(dst, e.Subject)
	}
	dst = append(dst, `,"time":`...)
	if dst, err = appendJSONTime(dst, e.Time); err != nil {
		return nil, err
	}
	dst = append(dst, `,"datacontenttype":`...)
	dst = appendJSONString(dst, e.DataContentType)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"provider":`...)
	dst = appendJSONString(dst, e.Provider)
	if e.ProviderEventID != "" {
		dst = append(dst, `,"providereventid":`...)
		dst = appendJSONString(dst, e.ProviderEventID)
	}
	dst = append(dst, `,"receivedat":`...)
	if dst, err = appendJSONTime(dst, e.ReceivedAt); err != nil {
		return nil, err
	}
	if e.TraceParent != "" {
		dst = append(dst, `,"traceparent":`...)
		dst = appendJSONString(dst, e.TraceParent)
	}
	if e.TraceState != "" {
		dst = append(dst, `,"tracestate":`...)
		dst = appendJSONString(dst, e.TraceState)
	}
	return append(dst, '}'), nil
}

// appendJSONString quotes s as encoding/json does. The attributes are
// visible ASCII almost always, which is copied as it is; anything else
// goes through encoding/json, for its escaping rules.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendJSONTime(dst []byte, t time.Time) ([]byte, error) {
	b, err := t.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("canonical event: %w", err)
	}
	return append(dst, b...), nil
}
