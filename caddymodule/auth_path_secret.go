package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(PathSecretAuth{})
}

// Interface guard.
var _ AuthScheme = (*PathSecretAuth)(nil)

// PathSecretAuth accepts a request whose path contains one of several
// secrets as a whole segment: the subscription platform documents no
// authentication, so the merchant registers a webhook URL with a random
// segment (add Caddy's remote_ip matcher for an IP allowlist). Match the
// route with `handle` or `route`, not `handle_path`, which would strip the
// secret before the check.
type PathSecretAuth struct {
	// Secrets are the accepted segments (no '/'); any one matches.
	// Placeholders are resolved at load time.
	Secrets []string `json:"secrets,omitempty"`

	v *verify.PathSecret
}

// CaddyModule returns the Caddy module information.
func (PathSecretAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".path_secret",
		New: func() caddy.Module { return new(PathSecretAuth) },
	}
}

// Provision resolves the secrets and builds the check.
func (a *PathSecretAuth) Provision(caddy.Context) error {
	secrets, err := resolveAll(a.Secrets)
	if err != nil {
		return err
	}
	a.v, err = verify.NewPathSecret(secrets...)
	return err
}

// Verifier implements AuthScheme. The check also redacts the secret from
// the path the gateway stores and forwards.
func (a *PathSecretAuth) Verifier() verify.Verifier { return a.v }

// UnmarshalCaddyfile reads
//
//	auth path_secret <secret>...
func (a *PathSecretAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	a.Secrets = d.RemainingArgs()
	if len(a.Secrets) == 0 {
		return d.Err("auth path_secret: want <secret>...")
	}
	return noAuthBlock(d, "path_secret")
}
