package verify

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// PathSecret checks that the request path contains a secret segment. The
// subscription platform documents no authentication, so the merchant puts a
// random segment in the webhook URL it registers there, e.g.
// /hooks/sublytics/3f9c0a…/ .
//
// The check reads r.URL.Path (decoded). A Caddy route that strips a path
// prefix before the gateway (handle_path, uri strip_prefix) also strips the
// secret: match the path with `handle` instead, or put the secret after the
// stripped prefix.
//
// The secret also sits in the request URI, which a sync route would forward
// to the backend and later handlers would read: use Redact and RedactQuery
// to clean a path and a query before they are logged, stored or forwarded.
// (Caddy's access log records the URI as received, before any handler:
// only a log filter keeps the secret out of it.)
type PathSecret struct {
	secrets []digest
}

// NewPathSecret accepts a request whose path has any of secrets as one full
// segment. A secret must be non-empty and free of '/' (it is one segment).
func NewPathSecret(secrets ...string) (*PathSecret, error) {
	if len(secrets) == 0 {
		return nil, configErr("path_secret: no secrets")
	}
	p := &PathSecret{secrets: make([]digest, len(secrets))}
	for i, s := range secrets {
		switch {
		case s == "":
			return nil, configErr("path_secret: secret #%d is empty", i+1)
		case strings.Contains(s, "/"):
			return nil, configErr("path_secret: secret #%d contains '/', but must be a single path segment", i+1)
		case s == "." || s == "..":
			return nil, configErr("path_secret: secret #%d is a dot segment", i+1)
		}
		p.secrets[i] = digestOf(s)
	}
	return p, nil
}

// Verify implements Verifier. Every segment is compared with every secret;
// which segment matched, if any, does not show in the timing.
func (p *PathSecret) Verify(r *http.Request, _ []byte) error {
	if r.URL == nil {
		return fmt.Errorf("path secret: request has no URL: %w", ErrMissing)
	}
	found := false
	hasSegment := false
	for seg := range strings.SplitSeq(r.URL.Path, "/") {
		if seg == "" {
			continue
		}
		hasSegment = true
		if matchAny(digestOf(seg), p.secrets) {
			found = true
		}
	}
	if !hasSegment {
		return fmt.Errorf("path secret missing: %w", ErrMissing)
	}
	if !found {
		return fmt.Errorf("path secret mismatch: %w", ErrMismatch)
	}
	return nil
}

// Redacted replaces a secret in a path or a query.
const Redacted = "REDACTED"

// Redact returns path with every segment equal to a configured secret
// replaced by Redacted.
func (p *PathSecret) Redact(path string) string {
	segs := strings.Split(path, "/")
	changed := false
	for i, seg := range segs {
		if seg != "" && matchAny(digestOf(seg), p.secrets) {
			segs[i] = Redacted
			changed = true
		}
	}
	if !changed {
		return path
	}
	return strings.Join(segs, "/")
}

// VerifyHeaders implements HeaderVerifier.
func (p *PathSecret) VerifyHeaders(r *http.Request) error { return p.Verify(r, nil) }

// RedactQuery returns a raw query string with every key or value that is,
// or has as a '/'-separated segment, a configured secret replaced by
// Redacted. A provider's webhook URL is copied whole, and a secret put in
// the path can also be put in the query (a token parameter, a return path).
// Keys and values are compared as written and percent-decoded (with '+'
// read both as a space and as itself); the rest of the query is kept as
// written.
func (p *PathSecret) RedactQuery(rawQuery string) string {
	if rawQuery == "" {
		return rawQuery
	}
	pairs := strings.Split(rawQuery, "&")
	changed := false
	for i, pair := range pairs {
		key, value, hasValue := strings.Cut(pair, "=")
		if p.holdsSecret(key) {
			key, changed = Redacted, true
		}
		if hasValue && p.holdsSecret(value) {
			value, changed = Redacted, true
		}
		if hasValue {
			pairs[i] = key + "=" + value
		} else {
			pairs[i] = key
		}
	}
	if !changed {
		return rawQuery
	}
	return strings.Join(pairs, "&")
}

// holdsSecret reports whether a query component is a secret or has one as
// a path segment. It is compared as written and decoded both ways a
// receiver may read it: as a query ('+' is a space) and as a path ('+' is
// itself). A secret with a '+' copied into a URL unescaped arrives as a
// '+', which query decoding alone would turn into a space and miss.
func (p *PathSecret) holdsSecret(component string) bool {
	if component == "" {
		return false
	}
	found := p.holdsSegment(component)
	if decoded, err := url.QueryUnescape(component); err == nil && decoded != component {
		found = p.holdsSegment(decoded) || found
	}
	if decoded, err := url.PathUnescape(component); err == nil && decoded != component {
		found = p.holdsSegment(decoded) || found
	}
	return found
}

// holdsSegment reports whether s is a secret or has one as a '/'-separated
// segment.
func (p *PathSecret) holdsSegment(s string) bool {
	found := false
	for seg := range strings.SplitSeq(s, "/") {
		if seg != "" && matchAny(digestOf(seg), p.secrets) {
			found = true
		}
	}
	return found
}

// SecretHeaders implements SecretCarrier: the secret is in the path, not in
// a header.
func (p *PathSecret) SecretHeaders() []string { return nil }
