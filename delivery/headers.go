package delivery

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Headers of a delivered request. Every delivery, sync or async, first
// attempt or replay, carries them through HeaderBuilder.Build, so a backend
// sees one contract whichever path an event took.
const (
	// HeaderIdempotencyKey carries the event id. It is the same on every
	// attempt and replay of an event, so a backend can drop repeats. The id
	// is unique within the event's CloudEvents source (the body's
	// "source"); a backend that receives several sources should key on
	// both.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderAttempt is the delivery's sequence number for this event,
	// starting at 1 and counting replays too.
	HeaderAttempt = "Webhook-Attempt"
	// HeaderReplay is "true" on an operator's replay, and absent otherwise.
	// A replay keeps the Idempotency-Key (it is the same event): a backend
	// that wants to reprocess a replayed event checks this header.
	HeaderReplay = "Webhook-Replay"
	// HeaderWebhookID, HeaderWebhookTimestamp and HeaderWebhookSignature
	// are the Standard Webhooks headers, set when a signing secret is
	// configured. The id is the event id; the timestamp is the time of the
	// attempt (not of the event), so the receiver's tolerance window
	// applies to each attempt.
	HeaderWebhookID        = standardwebhooks.HeaderWebhookID
	HeaderWebhookTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderWebhookSignature = standardwebhooks.HeaderWebhookSignature
)

// UserAgent identifies the gateway to the backend.
const UserAgent = "caddy-webhook-gateway"

// minSecretBytes is the shortest signing key accepted. The Standard
// Webhooks spec recommends 24 to 64 bytes; 16 bytes (128 bits) is the
// floor below which a key can no longer be called secret.
const minSecretBytes = 16

const secretPrefix = "whsec_"

// Signer signs deliveries with a Standard Webhooks secret.
type Signer struct {
	wh *standardwebhooks.Webhook
}

// NewSigner parses a Standard Webhooks secret: "whsec_" followed by the
// base64 of at least 16 random bytes. The prefix is required so that a
// secret of another kind pasted by mistake fails at load time.
func NewSigner(secret string) (*Signer, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, errors.New("signing secret is empty")
	}
	if !strings.HasPrefix(secret, secretPrefix) {
		return nil, fmt.Errorf("signing secret must start with %q", secretPrefix)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		// The library's message quotes the failing input position only.
		return nil, fmt.Errorf("signing secret is not %s followed by base64: %w", secretPrefix, err)
	}
	// The library keeps the decoded key private, so its length is checked
	// on a second decoding (which cannot fail after the first).
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("signing secret decodes to %d bytes, want at least %d", len(key), minSecretBytes)
	}
	return &Signer{wh: wh}, nil
}

// Sign returns the webhook-signature value ("v1,<base64>") for one message.
func (s *Signer) Sign(id string, at time.Time, body []byte) (string, error) {
	sig, err := s.wh.Sign(id, at, body)
	if err != nil {
		return "", fmt.Errorf("signing event %s: %w", id, err)
	}
	return sig, nil
}

// SignHeader sets webhook-id, webhook-timestamp and webhook-signature on h.
func (s *Signer) SignHeader(h http.Header, id string, at time.Time, body []byte) error {
	sig, err := s.Sign(id, at, body)
	if err != nil {
		return err
	}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderWebhookSignature, sig)
	return nil
}

// HeaderBuilder builds the headers of a delivery. The sync path (which
// hands the request to reverse_proxy) and the async engine both use it, so
// the two cannot drift apart.
type HeaderBuilder struct {
	signer *Signer
}

// NewHeaderBuilder returns a builder that signs with signer, or does not
// sign when signer is nil.
func NewHeaderBuilder(signer *Signer) *HeaderBuilder {
	return &HeaderBuilder{signer: signer}
}

// Signed reports whether deliveries carry a Standard Webhooks signature.
func (b *HeaderBuilder) Signed() bool { return b != nil && b.signer != nil }

// Build returns the complete header set for delivering rec.Event as
// attempt number attempt (1-based) at now: Content-Type
// (application/cloudevents+json), Idempotency-Key, Webhook-Attempt,
// Webhook-Replay when replay is set, User-Agent, and the Standard Webhooks
// headers when a signer is configured. The body to send is rec.Event,
// byte for byte, since the signature covers it. A nil builder builds
// unsigned headers.
func (b *HeaderBuilder) Build(rec *store.Record, attempt int, replay bool, now time.Time) http.Header {
	h := make(http.Header, 8)
	h.Set("Content-Type", schemas.ContentType)
	h.Set("User-Agent", UserAgent)
	h.Set(HeaderIdempotencyKey, rec.ID)
	h.Set(HeaderAttempt, strconv.Itoa(attempt))
	if replay {
		h.Set(HeaderReplay, "true")
	}
	if b.Signed() {
		// The library's Sign cannot fail (HMAC over bytes); should a
		// future version fail, the request goes out unsigned and the
		// backend rejects it, which is visible, rather than not at all.
		_ = b.signer.SignHeader(h, rec.ID, now, rec.Event)
	}
	return h
}
