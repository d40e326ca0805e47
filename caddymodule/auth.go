package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// Auth schemes.
const (
	schemeHeader     = "header"
	schemeBasic      = "basic"
	schemeHMAC       = "hmac"
	schemePathSecret = "path_secret"
)

// AuthConfig is one check a request must pass. Secrets may be Caddy
// placeholders such as {env.LOYALTY_TOKEN} or {file./run/secrets/key}; they
// are resolved when the config loads, and an empty result is an error.
type AuthConfig struct {
	// Scheme is "header" (a custom header carries a shared value),
	// "basic" (HTTP Basic), "hmac" (a header carries an HMAC of the raw
	// body) or "path_secret" (a secret segment in the request path).
	Scheme string `json:"scheme"`

	// Header is the header checked by the "header" scheme (required) and
	// the "hmac" scheme (default X-Signature).
	Header string `json:"header,omitempty"`

	// Secrets are the accepted header values ("header"), HMAC keys
	// ("hmac") or path segments ("path_secret"). Any one matches, so a new
	// secret can be added before the old one is removed.
	Secrets []string `json:"secrets,omitempty"`

	// Credentials are the accepted user/password pairs of the "basic"
	// scheme.
	Credentials []BasicCredential `json:"credentials,omitempty"`

	// Hash is the HMAC hash: sha256 (default), sha1 or sha512.
	Hash string `json:"hash,omitempty"`

	// Encoding is how the HMAC is written in the header: hex (default) or
	// base64.
	Encoding string `json:"encoding,omitempty"`

	// Prefix precedes the encoded HMAC in the header, e.g. "sha256=".
	// Default: none.
	Prefix string `json:"prefix,omitempty"`
}

// BasicCredential is one accepted HTTP Basic user/password pair.
type BasicCredential struct {
	// Username may be a placeholder.
	Username string `json:"username"`
	// Password may be a placeholder.
	Password string `json:"password"`
}

func (a AuthConfig) validate() error {
	switch a.Scheme {
	case schemeHeader:
		if !trimmed(a.Header) {
			return fmt.Errorf("scheme header needs a header name")
		}
		if len(a.Secrets) == 0 {
			return fmt.Errorf("scheme header needs at least one value")
		}
	case schemeBasic:
		if len(a.Credentials) == 0 {
			return fmt.Errorf("scheme basic needs at least one username and password")
		}
	case schemeHMAC, schemePathSecret:
		if len(a.Secrets) == 0 {
			return fmt.Errorf("scheme %s needs at least one secret", a.Scheme)
		}
	case "":
		return fmt.Errorf("missing scheme (want header, basic, hmac or path_secret)")
	default:
		return fmt.Errorf("unknown scheme %q (want header, basic, hmac or path_secret)", a.Scheme)
	}
	return nil
}

// buildVerifiers resolves every secret and builds the route's verifiers,
// with the request headers that carry secrets.
func buildVerifiers(auth []AuthConfig, repl *caddy.Replacer) ([]verify.Verifier, []string, error) {
	var (
		verifiers []verify.Verifier
		headers   []string
	)
	for i, a := range auth {
		v, err := buildVerifier(a, repl)
		if err != nil {
			return nil, nil, fmt.Errorf("auth #%d (%s): %w", i+1, a.Scheme, err)
		}
		verifiers = append(verifiers, v)
		headers = append(headers, v.SecretHeaders()...)
	}
	return verifiers, headers, nil
}

func buildVerifier(a AuthConfig, repl *caddy.Replacer) (verify.SecretCarrier, error) {
	switch a.Scheme {
	case schemeHeader:
		values, err := resolveAll(a.Secrets, repl)
		if err != nil {
			return nil, err
		}
		return verify.NewHeader(a.Header, values...)
	case schemeBasic:
		creds := make([]verify.Credential, 0, len(a.Credentials))
		for j, c := range a.Credentials {
			user, err := resolve(c.Username, repl)
			if err != nil {
				return nil, fmt.Errorf("credential #%d username: %w", j+1, err)
			}
			pass, err := resolve(c.Password, repl)
			if err != nil {
				return nil, fmt.Errorf("credential #%d password: %w", j+1, err)
			}
			creds = append(creds, verify.Credential{Username: user, Password: pass})
		}
		return verify.NewBasic(creds...)
	case schemeHMAC:
		keys, err := resolveAll(a.Secrets, repl)
		if err != nil {
			return nil, err
		}
		return verify.NewHMAC(verify.HMACConfig{
			Header:   a.Header,
			Hash:     a.Hash,
			Encoding: a.Encoding,
			Prefix:   a.Prefix,
			Keys:     keys,
		})
	case schemePathSecret:
		secrets, err := resolveAll(a.Secrets, repl)
		if err != nil {
			return nil, err
		}
		return verify.NewPathSecret(secrets...)
	}
	return nil, fmt.Errorf("unknown scheme %q", a.Scheme)
}

func resolveAll(in []string, repl *caddy.Replacer) ([]string, error) {
	out := make([]string, 0, len(in))
	for j, s := range in {
		v, err := resolve(s, repl)
		if err != nil {
			return nil, fmt.Errorf("secret #%d: %w", j+1, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// resolve replaces placeholders in a secret; an unknown placeholder or an
// empty result fails, so a missing environment variable or file cannot
// leave a route open. The error names the placeholder, never its value.
func resolve(s string, repl *caddy.Replacer) (string, error) {
	v, err := repl.ReplaceOrErr(s, true, true)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", fmt.Errorf("%q resolved to an empty value", s)
	}
	return v, nil
}
