// Package verify authenticates incoming webhooks on the raw request, before
// anything parses the body.
package verify

import "net/http"

// Verifier checks one request. It returns nil when the request is authentic
// and otherwise an error that says which check failed, never a secret.
type Verifier interface {
	Verify(r *http.Request, body []byte) error
}
