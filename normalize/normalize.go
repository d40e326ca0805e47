// Package normalize turns the providers' envelopes into canonical events
// (CloudEvents 1.0). It is plain Go: no Caddy, no I/O. Each provider is one
// file that registers itself (see provider.go).
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
//   - Envelope member names match exactly. A duplicate member name in an
//     object the gateway reads members of (the envelope, event_body and its
//     object, webhook_data and its object, each loyalty item) is refused, as
//     I-JSON (RFC 7493) requires: the gateway and a backend's parser could
//     otherwise read different values. Members the envelope does not define
//     are ignored, so providers can add some.
//   - Unknown event types are accepted. Event types and subjects must not
//     contain spaces or control characters and event types are at most 256
//     characters; ids are visible ASCII (they become HTTP headers).
//   - A Sublytics id may be a string or a non-negative integer; any other
//     number (1.5, -1, 1e3) is refused, since the id is half the dedup key.
//     Its counters look separate per webhook type, so the canonical id is
//     "<webhook_type>:<webhook_event_id>" and the number itself is kept in
//     the providereventid attribute.
//   - Hex ids (the payment gateway's event_id, a UUID request id) are
//     lowercased: hex digits carry no case, and an uppercased copy must
//     dedup with the original.
//   - webhook_data and event_body may be [] as well as an object: PHP, which
//     both providers run on, encodes an empty map as [].
//   - A zone-less time that the route's zone pushes outside years 0001-9999
//     is refused: RFC 3339 cannot write it.
//   - A subject that is not a string or number, is empty, or is too long
//     for the canonical event is left out rather than refusing the event.
//   - Detecting the provider (Auto) does not choose the source: an Auto
//     route's events default to AutoSource, since the body alone cannot
//     prove which sender wrote it.
package normalize

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// AutoSource is the default source of a route that detects its provider
// (Auto). It is not "/<detected provider>": a credential vouches only for
// its own route, and a route that accepts every envelope must not write
// into the source, and so the dedup keys, of the route configured for that
// provider. The event's provider attribute still names the provider.
const AutoSource = "/" + Auto

// DefaultSource is the source of a route's events when Options.Source is
// empty: "/<provider>" for a fixed provider, AutoSource for Auto (or "").
func DefaultSource(provider string) string {
	if provider == "" || provider == Auto {
		return AutoSource
	}
	return "/" + provider
}

// DefaultMaxItems bounds the items of one loyalty batch when Options set no
// bound. The platform chunks its expiring notifications by 1000 but sends
// every expiring coupon in one POST; 50,000 small items still fit the
// default body limit.
const DefaultMaxItems = 50000

// Options configure one route's normalization.
type Options struct {
	// Provider is one of the provider names or Auto; empty means Auto.
	Provider string
	// Source is the CloudEvents source; empty means DefaultSource(Provider):
	// "/<provider>", or AutoSource when the provider is detected. It must
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
	// RequestID is the sender's own id for the request (a header such as
	// X-Webhook-Request-Id), or "". For a provider without event ids it
	// replaces the derived id: the event is then deduplicated by it for the
	// whole retention, like a provider's event id. Items of a batch get
	// "<RequestID>.<index>". The content key is still given to Each's
	// callback, which decides whether content dedup applies too (it must,
	// unless a signature binds the request id).
	RequestID string
	// MaxItems bounds the items of one batch; more is an InputError of kind
	// KindTooLarge. Zero means DefaultMaxItems.
	MaxItems int
	// MaxAge refuses an event whose own time (as the provider wrote it, not
	// the receive time) is more than MaxAge before ReceivedAt: a replay of
	// a captured request after its dedup key has expired must not pass.
	// Only providers with event ids are checked. Zero disables the check.
	MaxAge time.Duration
}

// CheckOptions reports a configuration mistake in opts: an unknown provider
// (wrapping ErrUnknownProvider), a source that is not a URI reference, or a
// type prefix that could not appear in a CloudEvents type. Normalize runs it
// too; a caller can run it once at provisioning to fail early.
func CheckOptions(opts Options) error {
	if opts.Provider != "" && opts.Provider != Auto && lookup(opts.Provider) == nil {
		return fmt.Errorf("%w %q (want %s)", ErrUnknownProvider, opts.Provider, knownProviders())
	}
	if opts.Source != "" && (!schemas.IsURIReference(opts.Source) || utf8.RuneCountInString(opts.Source) > schemas.MaxSourceLength) {
		return fmt.Errorf("normalize: source %q is not a URI reference of at most %d characters", opts.Source, schemas.MaxSourceLength)
	}
	if opts.TypePrefix != "" && (!schemas.IsToken(opts.TypePrefix) || utf8.RuneCountInString(opts.TypePrefix) > schemas.MaxTypeLength-256) {
		return fmt.Errorf("normalize: type prefix %q must be at most %d characters without spaces or control characters", opts.TypePrefix, schemas.MaxTypeLength-256)
	}
	if opts.RequestID != "" && !validRequestID(opts.RequestID) {
		return &InputError{Kind: KindEnvelope, Offset: -1, Reason: fmt.Sprintf("request id must be 1 to %d visible ASCII characters", maxRequestIDLength)}
	}
	if opts.MaxItems < 0 || opts.MaxAge < 0 {
		return errors.New("normalize: MaxItems and MaxAge must not be negative")
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
	var events []schemas.Event
	_, err := Each(body, opts, func(ev *schemas.Event, _ string) error {
		e := *ev
		e.Data = append(make([]byte, 0, len(ev.Data)), ev.Data...)
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// Each is Normalize one event at a time, for a batch too large to hold as
// events all at once: the whole body is checked first (syntax, envelope,
// every batch item's shape), so fn is only called for a body that is
// accepted in full. fn gets each event and its content key (see
// ContentKey) when the provider sends no event ids, else "": also when
// Options.RequestID gives the event its id, since a request id that no
// signature binds can be rewritten by whoever re-sends a captured request.
// ev is reused after fn returns, and its Data is a sub-slice of body. fn's
// error stops Each and is returned as it is. Each returns the provider the
// body was read as.
func Each(body []byte, opts Options, fn func(ev *schemas.Event, contentKey string) error) (string, error) {
	if err := CheckOptions(opts); err != nil {
		return "", err
	}
	want := opts.Provider
	if want == "" {
		want = Auto
	}
	r := reader{opts: opts}
	if err := parseEnvelope(body, &r.env); err != nil {
		return "", err
	}
	p, ierr := resolve(&r.env, want)
	if ierr != nil {
		return "", ierr
	}
	r.provider = p.name
	r.source = opts.Source
	if r.source == "" {
		r.source = DefaultSource(want)
	}
	r.received = opts.ReceivedAt.UTC()
	if opts.ReceivedAt.IsZero() || !schemas.InTimeRange(r.received) {
		r.received = time.Now().UTC()
	}
	var fnErr error
	ierr = p.read(&r, func(ev *schemas.Event, key string) error {
		fnErr = fn(ev, key)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return p.name, fnErr
	case ierr != nil:
		return p.name, ierr
	}
	return p.name, nil
}

// reader holds one body being normalized.
type reader struct {
	env      envelope
	opts     Options
	provider string
	source   string
	received time.Time
	ev       schemas.Event
}

// str reads a string member. A missing member is an error when required; a
// JSON null counts as missing.
func (r *reader) str(name string, required bool) (string, *InputError) {
	v := r.env.get(name)
	if v == nil || (v[0] == 'n' && !required) {
		if required {
			return "", r.fieldErr(name, -1, "is required")
		}
		return "", nil
	}
	s, ok := jsonscan.DecodeString(v)
	if !ok {
		return "", r.fieldErr(name, r.env.offset(name), "must be a string, got %s", jsonscan.Kind(v))
	}
	return s, nil
}

// container reads a required object member; arrays pass too when
// allowArray, since PHP encodes an empty map as [].
func (r *reader) container(name string, allowArray bool) ([]byte, *InputError) {
	v := r.env.get(name)
	if v == nil {
		return nil, r.fieldErr(name, -1, "is required")
	}
	if v[0] == '{' || (allowArray && v[0] == '[') {
		return v, nil
	}
	return nil, r.fieldErr(name, r.env.offset(name), "must be a JSON object, got %s", jsonscan.Kind(v))
}

func (r *reader) fieldErr(name string, off int, format string, args ...any) *InputError {
	return fieldErr(r.provider, name, r.env.body, off, format, args...)
}

// unique refuses duplicate member names in the object v (a sub-slice of the
// body) that the gateway reads members of; path names it.
func (r *reader) unique(v []byte, path string) *InputError {
	if len(v) == 0 {
		return nil
	}
	return uniqueObject(r.provider, r.env.body, offsetIn(r.env.body, v), path)
}

// offsetIn returns where sub (a sub-slice of body) starts in body.
func offsetIn(body, sub []byte) int {
	return cap(body) - cap(sub)
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
		return fieldErr(r.provider, p.Field, r.env.body, r.env.offset(p.Field), "%s", p.Reason)
	}
	return envelopeErr(r.provider, r.env.body, -1, err.Error())
}

// providerTime reads a zone-less provider time member (already validated
// for its format); the receive time stands in when there is none. A time
// older than the route's MaxAge is refused.
func (r *reader) providerTime(name, s string) (time.Time, *InputError) {
	t, ok, err := schemas.ParseProviderTime(s, r.opts.Location)
	if err != nil {
		// The format was checked; what is left is a year pushed out of
		// range by the time zone.
		return time.Time{}, r.fieldErr(name, r.env.offset(name), "%v", err)
	}
	if !ok {
		return r.received, nil
	}
	if r.opts.MaxAge > 0 && r.received.Sub(t) > r.opts.MaxAge {
		return time.Time{}, r.fieldErr(name, r.env.offset(name),
			"event time %s is more than %s before its receipt; the route refuses events this old, whose dedup key may have expired (a replayed request)",
			t.Format(time.RFC3339), r.opts.MaxAge)
	}
	return t, nil
}

// event fills the reused event of r.
func (r *reader) event(id, typ, subject string, t time.Time, data []byte) *schemas.Event {
	if r.opts.TypePrefix != "" {
		typ = r.opts.TypePrefix + typ
	}
	r.ev = schemas.Event{
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
	return &r.ev
}

// maxRequestIDLength bounds Options.RequestID, leaving room in the event
// id for a batch index.
const maxRequestIDLength = 200

func validRequestID(s string) bool {
	return len(s) <= maxRequestIDLength && s != "" && schemas.IsVisibleASCII(s)
}

// normalizeID lowercases a sender's id that is hex, or a UUID: such ids
// carry no case, so "AB12" and "ab12" are the same event and must share a
// dedup key. Other ids are kept as sent.
func normalizeID(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		isHex := (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
		uuidDash := c == '-' && len(s) == 36 && (i == 8 || i == 13 || i == 18 || i == 23)
		if !isHex && !uuidDash {
			return s
		}
	}
	return strings.ToLower(s)
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
		s, _ = jsonscan.DecodeString(v)
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
