package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(HeaderAuth{})
}

// Interface guards.
var (
	_ AuthScheme = (*HeaderAuth)(nil)
	_ authMerger = (*HeaderAuth)(nil)
)

// HeaderAuth accepts a request whose header carries one of several shared
// values: the loyalty platform's open-source sender, where the admin
// chooses a header name and value.
type HeaderAuth struct {
	// Header is the request header that carries the value. Required.
	Header string `json:"header,omitempty"`

	// Secrets are the accepted values; any one matches, so a new value can
	// be added before the old one is removed. Placeholders such as
	// {env.LOYALTY_TOKEN} or {file./run/secrets/token} are resolved at
	// load time, and an empty result is an error.
	Secrets []string `json:"secrets,omitempty"`

	v *verify.Header
}

// CaddyModule returns the Caddy module information.
func (HeaderAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".header",
		New: func() caddy.Module { return new(HeaderAuth) },
	}
}

// Provision resolves the values and builds the check.
func (a *HeaderAuth) Provision(caddy.Context) error {
	values, err := resolveAll(a.Secrets)
	if err != nil {
		return err
	}
	a.v, err = verify.NewHeader(a.Header, values...)
	return err
}

// Verifier implements AuthScheme.
func (a *HeaderAuth) Verifier() verify.Verifier { return a.v }

// UnmarshalCaddyfile reads
//
//	auth header <name> <value>...
func (a *HeaderAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	args := d.RemainingArgs()
	if len(args) < 2 {
		return d.Err("auth header: want <name> <value>...")
	}
	a.Header, a.Secrets = args[0], args[1:]
	return noAuthBlock(d, "header")
}

// merge adds the values of a later line for the same header.
func (a *HeaderAuth) merge(other AuthScheme) bool {
	o, ok := other.(*HeaderAuth)
	if !ok || http.CanonicalHeaderKey(o.Header) != http.CanonicalHeaderKey(a.Header) {
		return false
	}
	a.Secrets = append(a.Secrets, o.Secrets...)
	return true
}
