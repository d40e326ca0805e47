// Package normalize turns the three providers' envelopes into canonical
// events (CloudEvents 1.0). It is plain Go: no Caddy, no I/O.
//
// The body is scanned once for validity (JSON and UTF-8) and then walked by
// hand: only the envelope members and the few payload members that give the
// subject are decoded; the payload itself is copied as raw JSON into
// Event.Data. Errors caused by the body are *InputError (answer 400); other
// errors are configuration mistakes.
//
// Decisions where the provider documents are silent:
//
//   - The body must be UTF-8 (RFC 8259); a byte order mark is refused.
//   - Envelope member names match exactly, and the last of duplicate
//     members wins, as in encoding/json. Members the envelope does not
//     define are ignored, so providers can add some.
//   - Unknown event types are accepted. Event types and subjects must not
//     contain spaces or control characters and event types are at most 256
//     characters; ids are visible ASCII (they become HTTP headers).
//   - A Sublytics id may be a string or a non-negative integer; any other
//     number (1.5, -1, 1e3) is refused, since the id is half the dedup key.
//   - webhook_data and event_body may be [] as well as an object: PHP, which
//     both providers run on, encodes an empty map as [].
//   - A zone-less time that the route's zone pushes outside years 0001-9999
//     is refused: RFC 3339 cannot write it.
//   - A subject that is not a string or number, is empty, or is too long
//     for the canonical event is left out rather than refusing the event.
package normalize

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
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
	// Provider is one of the provider names or Auto; empty means Auto.
	Provider string
	// Source is the CloudEvents source; empty means "/<provider>". It must
	// be a URI reference.
	Source string
	// TypePrefix is prepended to the provider's event type. It must not
	// contain spaces or control characters.
	TypePrefix string
	// Location reads zone-less provider times; nil means UTC.
	Location *time.Location
	// ReceivedAt is when the request was read; it is the event time when
	// the provider gives none. Zero means now.
	ReceivedAt time.Time
}

// CheckOptions reports a configuration mistake in opts: an unknown provider
// (wrapping ErrUnknownProvider), a source that is not a URI reference, or a
// type prefix that could not appear in a CloudEvents type. Normalize runs it
// too; a caller can run it once at provisioning to fail early.
func CheckOptions(opts Options) error {
	switch opts.Provider {
	case "", Auto, OpenLoyalty, Sublytics, USAePay:
	default:
		return fmt.Errorf("%w %q (want %s, %s, %s or %s)", ErrUnknownProvider, opts.Provider, OpenLoyalty, Sublytics, USAePay, Auto)
	}
	if opts.Source != "" && (!schemas.IsURIReference(opts.Source) || utf8.RuneCountInString(opts.Source) > schemas.MaxSourceLength) {
		return fmt.Errorf("normalize: source %q is not a URI reference of at most %d characters", opts.Source, schemas.MaxSourceLength)
	}
	if opts.TypePrefix != "" && (!schemas.IsToken(opts.TypePrefix) || utf8.RuneCountInString(opts.TypePrefix) > schemas.MaxTypeLength-256) {
		return fmt.Errorf("normalize: type prefix %q must be at most %d characters without spaces or control characters", opts.TypePrefix, schemas.MaxTypeLength-256)
	}
	return nil
}

// Normalize parses body and returns one canonical event, or one per item for
// a loyalty batch, in body order. Bad input yields an *InputError; a bad
// opts yields another error (see CheckOptions). Normalize never panics, and
// the events it returns pass schemas.Validate and the canonical JSON Schema.
//
// Event.Data is a copy: body may be reused once Normalize returns.
func Normalize(body []byte, opts Options) ([]schemas.Event, error) {
	if err := CheckOptions(opts); err != nil {
		return nil, err
	}
	want := opts.Provider
	if want == "" {
		want = Auto
	}
	r := reader{opts: opts}
	if err := parseEnvelope(body, &r.env); err != nil {
		return nil, err
	}
	provider, ierr := resolve(&r.env, want)
	if ierr != nil {
		return nil, ierr
	}
	r.provider = provider
	r.source = opts.Source
	if r.source == "" {
		r.source = "/" + provider
	}
	r.received = opts.ReceivedAt.UTC()
	if opts.ReceivedAt.IsZero() || !schemas.InTimeRange(r.received) {
		r.received = time.Now().UTC()
	}
	var events []schemas.Event
	switch provider {
	case OpenLoyalty:
		events, ierr = r.openLoyalty()
	case Sublytics:
		events, ierr = r.sublytics()
	default:
		events, ierr = r.usaepay()
	}
	if ierr != nil {
		return nil, ierr
	}
	return events, nil
}

// reader holds one body being normalized.
type reader struct {
	env      envelope
	opts     Options
	provider string
	source   string
	received time.Time
}

// str reads a string member. A missing member is an error when required; a
// JSON null counts as missing.
func (r *reader) str(f field, required bool) (string, *InputError) {
	v := r.env.val[f]
	if v == nil || (v[0] == 'n' && !required) {
		if required {
			return "", r.fieldErr(f, -1, "is required")
		}
		return "", nil
	}
	s, ok := decodeString(v)
	if !ok {
		return "", r.fieldErr(f, r.env.off[f], "must be a string, got %s", jsonKind(v))
	}
	return s, nil
}

// container reads a required object member; arrays pass too when
// allowArray, since PHP encodes an empty map as [].
func (r *reader) container(f field, allowArray bool) ([]byte, *InputError) {
	v := r.env.val[f]
	if v == nil {
		return nil, r.fieldErr(f, -1, "is required")
	}
	if v[0] == '{' || (allowArray && v[0] == '[') {
		return v, nil
	}
	return nil, r.fieldErr(f, r.env.off[f], "must be a JSON object, got %s", jsonKind(v))
}

func (r *reader) fieldErr(f field, off int, format string, args ...any) *InputError {
	return fieldErr(r.provider, fieldNames[f], r.env.body, off, format, args...)
}

// check runs the envelope's validator tags, so the published schema and
// what the normalizer accepts cannot drift apart. The first problem is
// reported: one precise message is more useful to a provider than a list.
func (r *reader) check(envelope any) *InputError {
	err := schemas.Validate(envelope)
	if err == nil {
		return nil
	}
	if ve, ok := err.(*schemas.ValidationError); ok && len(ve.Problems) > 0 {
		p := ve.Problems[0]
		off := -1
		if f, ok := lookupField(p.Field); ok && r.env.has(f) {
			off = r.env.off[f]
		}
		return fieldErr(r.provider, p.Field, r.env.body, off, "%s", p.Reason)
	}
	return envelopeErr(r.provider, r.env.body, -1, err.Error())
}

// providerTime reads a zone-less provider time member (already validated
// for its format); the receive time stands in when there is none.
func (r *reader) providerTime(f field, s string) (time.Time, *InputError) {
	t, ok, err := schemas.ParseProviderTime(s, r.opts.Location)
	if err != nil {
		// The format was checked; what is left is a year pushed out of
		// range by the time zone.
		return time.Time{}, r.fieldErr(f, r.env.off[f], "%v", err)
	}
	if !ok {
		return r.received, nil
	}
	return t, nil
}

func (r *reader) event(id, typ, subject string, t time.Time, data []byte) schemas.Event {
	if r.opts.TypePrefix != "" {
		typ = r.opts.TypePrefix + typ
	}
	return schemas.Event{
		SpecVersion:     schemas.SpecVersion,
		ID:              id,
		Source:          r.source,
		Type:            typ,
		Subject:         subject,
		Time:            t,
		DataContentType: schemas.DataContentType,
		Data:            data,
		Provider:        r.provider,
		ReceivedAt:      r.received,
	}
}

// subjectOf turns a provider object id (string or number) into a subject.
// Anything else, or an id the canonical schema could not carry, gives no
// subject: it is optional, and a strange one is no reason to lose the event.
func subjectOf(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	v = v[:jsonscan.SkipValue(v, 0)]
	var s string
	switch c := v[0]; {
	case c == '"':
		s, _ = decodeString(v)
	case c == '-' || (c >= '0' && c <= '9'):
		s = string(v)
	default:
		return ""
	}
	if s == "" || !schemas.IsToken(s) || utf8.RuneCountInString(s) > schemas.MaxSubjectLength {
		return ""
	}
	return s
}

// member finds the first member called name of the object at the start of
// v and returns v from that member's value on: the value's end is left for
// the caller to find, so descending into a large object does not walk it
// twice. Stopping at the first match (encoding/json keeps the last of
// duplicates) also spares the rest of the payload; member only finds the
// subject, which never decides whether an event is accepted.
func member(v []byte, name string) []byte {
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	i := jsonscan.SkipWS(v, 1)
	for i < len(v) && v[i] == '"' {
		kEnd := jsonscan.SkipString(v, i)
		match := keyIs(v[i:kEnd], name)
		i = jsonscan.SkipWS(v, jsonscan.SkipWS(v, kEnd)+1) // past the ':'
		if match {
			return v[i:]
		}
		i = jsonscan.SkipWS(v, jsonscan.SkipValue(v, i))
		if i < len(v) && v[i] == ',' {
			i = jsonscan.SkipWS(v, i+1)
		}
	}
	return nil
}

// clone copies v so that events do not alias the request body.
func clone(v []byte) []byte { return bytes.Clone(v) }
