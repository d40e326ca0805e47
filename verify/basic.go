package verify

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Credential is one accepted HTTP Basic user/password pair.
type Credential struct {
	// Username must not contain ':' (RFC 7617: the first colon ends it).
	Username string
	// Password may contain ':'.
	Password string
}

// Basic checks HTTP Basic credentials, the payment gateway's optional
// scheme.
type Basic struct {
	users, passwords []digest
}

// NewBasic accepts any of creds. Both parts are kept only as SHA-256
// digests.
func NewBasic(creds ...Credential) (*Basic, error) {
	if len(creds) == 0 {
		return nil, configErr("basic: no credentials")
	}
	b := &Basic{users: make([]digest, len(creds)), passwords: make([]digest, len(creds))}
	for i, c := range creds {
		switch {
		case c.Username == "":
			return nil, configErr("basic: credential #%d has an empty username", i+1)
		case c.Password == "":
			return nil, configErr("basic: credential #%d has an empty password", i+1)
		case strings.Contains(c.Username, ":"):
			return nil, configErr("basic: credential #%d username contains ':', which HTTP Basic cannot carry", i+1)
		}
		b.users[i] = digestOf(c.Username)
		b.passwords[i] = digestOf(c.Password)
	}
	return b, nil
}

// Verify implements Verifier. The username and password are matched as a
// pair: one credential's user with another's password does not pass.
func (b *Basic) Verify(r *http.Request, _ []byte) error {
	if _, err := singleHeader(r, "Authorization"); err != nil {
		return fmt.Errorf("basic credentials: %w", err)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return fmt.Errorf("basic credentials unreadable (want Authorization: Basic base64(user:password)): %w", ErrMalformed)
	}
	u, p := digestOf(user), digestOf(pass)
	match := 0
	for i := range b.users {
		match |= subtle.ConstantTimeCompare(u[:], b.users[i][:]) &
			subtle.ConstantTimeCompare(p[:], b.passwords[i][:])
	}
	if match != 1 {
		return fmt.Errorf("basic credentials mismatch: %w", ErrMismatch)
	}
	return nil
}

// VerifyHeaders implements HeaderVerifier.
func (b *Basic) VerifyHeaders(r *http.Request) error { return b.Verify(r, nil) }

// SecretHeaders implements SecretCarrier.
func (b *Basic) SecretHeaders() []string { return []string{"Authorization"} }
