// Package verify authenticates incoming webhooks on the raw request, before
// anything parses the body.
//
// Every verifier accepts several secrets at once so a secret can be rotated
// without downtime: add the new one, let the provider switch, remove the old
// one. Comparisons are constant time and always run against every configured
// secret, so response timing reveals neither a secret nor which of several
// secrets matched. Constructors fail on an empty secret list or an empty
// secret: a route whose auth cannot be set up must not start open.
//
// Errors returned by Verify wrap ErrMissing, ErrMalformed, ErrMismatch or
// ErrStale and name the header or scheme that failed, so a caller can log a
// reason. They never contain a configured secret or the credential the
// client sent.
package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Verifier checks one request. It returns nil when the request is authentic
// and otherwise an error that says which check failed, never a secret.
type Verifier interface {
	Verify(r *http.Request, body []byte) error
}

// SecretCarrier is a Verifier that reads secrets from request headers. The
// gateway strips those headers before it stores or delivers a request, and
// from the request itself once it has answered, so a provider's credential
// reaches neither the backend, the store nor the handlers after it.
type SecretCarrier interface {
	Verifier
	// SecretHeaders names the request headers that carry a secret, in
	// canonical form.
	SecretHeaders() []string
}

// HeaderVerifier is a Verifier that needs the request line and headers
// only. The gateway runs it before it reads the body, so a request without
// the credential is refused before any of its body is held.
type HeaderVerifier interface {
	Verifier
	// VerifyHeaders is Verify without a body.
	VerifyHeaders(r *http.Request) error
}

// TimestampChecker is a Verifier that refuses a request whose signed
// timestamp is further than Tolerance from the gateway's clock. Within
// the tolerance a captured request passes again as it was sent, so a
// route must recognise it as a duplicate for at least that long.
type TimestampChecker interface {
	Verifier
	// Tolerance is how far, either way, a timestamp may be from the
	// clock; zero when this verifier checks no timestamp.
	Tolerance() time.Duration
}

// HeaderSigner is a Verifier whose signature covers request headers as
// well as the body. A request passes it only when each such header is
// present once, with the value that was signed.
type HeaderSigner interface {
	Verifier
	// SignsHeader reports whether the signed content includes the value
	// of the header name (any case).
	SignsHeader(name string) bool
}

// Reasons a request fails verification. Verify errors wrap exactly one of
// them; test with errors.Is.
var (
	// ErrMissing: the credential is absent (no header, empty header, no
	// secret path segment).
	ErrMissing = errors.New("credential missing")
	// ErrMalformed: a credential is present but cannot be read (bad
	// encoding, wrong length, repeated header, wrong prefix).
	ErrMalformed = errors.New("credential malformed")
	// ErrMismatch: the credential is well formed but matches no configured
	// secret.
	ErrMismatch = errors.New("credential mismatch")
	// ErrStale: the credential is authentic but its signed timestamp is
	// further from the gateway's clock than the tolerance: a replay, or a
	// sender whose clock is off.
	ErrStale = errors.New("credential timestamp outside the tolerance")
)

// Interface guards.
var (
	_ HeaderVerifier   = (*Header)(nil)
	_ HeaderVerifier   = (*Basic)(nil)
	_ HeaderVerifier   = (*PathSecret)(nil)
	_ TimestampChecker = (*HMAC)(nil)
	_ HeaderSigner     = (*HMAC)(nil)
)

// ErrConfig is wrapped by every constructor error, so configuration
// problems can be told apart from request failures.
var ErrConfig = errors.New("invalid verifier configuration")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// digest is the SHA-256 of a secret. Comparing digests instead of the values
// themselves gives fixed-length inputs to subtle.ConstantTimeCompare, which
// otherwise returns early (and so leaks the length) when lengths differ.
type digest [sha256.Size]byte

func digestOf(s string) digest { return sha256.Sum256([]byte(s)) }

// matchAny reports whether got equals any of want. It looks at every entry
// whatever the outcome, so timing does not reveal which entry matched.
func matchAny(got digest, want []digest) bool {
	ok := 0
	for i := range want {
		ok |= subtle.ConstantTimeCompare(got[:], want[i][:])
	}
	return ok == 1
}

// singleHeader returns the one value of a header. A repeated header is
// malformed rather than "any of them": accepting any value would let a
// client try several guesses in one request, and proxies disagree on which
// of several values wins.
func singleHeader(r *http.Request, name string) (string, error) {
	values := r.Header.Values(name)
	switch {
	case len(values) == 0 || (len(values) == 1 && values[0] == ""):
		return "", fmt.Errorf("header %s missing: %w", name, ErrMissing)
	case len(values) > 1:
		return "", fmt.Errorf("header %s repeated %d times: %w", name, len(values), ErrMalformed)
	}
	return values[0], nil
}
