package verify

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Header checks that a request header carries one of several shared values,
// the loyalty platform's scheme (an admin-chosen header name and value).
type Header struct {
	name   string
	values []digest
}

// NewHeader accepts requests whose header name carries any of values. The
// values are kept only as SHA-256 digests.
func NewHeader(name string, values ...string) (*Header, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, configErr("header: empty header name")
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return nil, configErr("header: %q is not a valid header name", name)
	}
	if len(values) == 0 {
		return nil, configErr("header %s: no accepted values", name)
	}
	h := &Header{name: http.CanonicalHeaderKey(name), values: make([]digest, len(values))}
	for i, v := range values {
		if v == "" {
			return nil, configErr("header %s: value #%d is empty", h.name, i+1)
		}
		if v != strings.TrimSpace(v) {
			// net/http trims the received value, so it could never match.
			return nil, configErr("header %s: value #%d has leading or trailing white space", h.name, i+1)
		}
		h.values[i] = digestOf(v)
	}
	return h, nil
}

// Verify implements Verifier.
func (h *Header) Verify(r *http.Request, _ []byte) error {
	got, err := singleHeader(r, h.name)
	if err != nil {
		return err
	}
	if !matchAny(digestOf(got), h.values) {
		return fmt.Errorf("header %s mismatch: %w", h.name, ErrMismatch)
	}
	return nil
}

// VerifyHeaders implements HeaderVerifier.
func (h *Header) VerifyHeaders(r *http.Request) error { return h.Verify(r, nil) }

// SecretHeaders implements SecretCarrier.
func (h *Header) SecretHeaders() []string { return []string{h.name} }
