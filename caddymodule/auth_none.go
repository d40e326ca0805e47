package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(NoneAuth{})
}

// Interface guards.
var (
	_ AuthScheme = (*NoneAuth)(nil)
	_ authMerger = (*NoneAuth)(nil)
)

// NoneAuth accepts every request. A route without any auth entry is
// refused at load time; a route meant to be open (protected by a
// remote_ip matcher or a private network) says so with "auth none". It
// cannot be combined with another scheme.
type NoneAuth struct{}

// CaddyModule returns the Caddy module information.
func (NoneAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".none",
		New: func() caddy.Module { return new(NoneAuth) },
	}
}

// Provision implements caddy.Provisioner; there is nothing to resolve.
func (*NoneAuth) Provision(caddy.Context) error { return nil }

// Verifier implements AuthScheme.
func (*NoneAuth) Verifier() verify.Verifier { return verify.None{} }

// UnmarshalCaddyfile reads
//
//	auth none
func (a *NoneAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	if d.NextArg() {
		return d.Err("auth none: takes no arguments")
	}
	return noAuthBlock(d, "none")
}

// merge makes a repeated "auth none" one entry.
func (*NoneAuth) merge(other AuthScheme) bool {
	_, ok := other.(*NoneAuth)
	return ok
}
