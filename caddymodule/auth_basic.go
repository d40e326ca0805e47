package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(BasicAuth{})
}

// Interface guards.
var (
	_ AuthScheme = (*BasicAuth)(nil)
	_ authMerger = (*BasicAuth)(nil)
)

// BasicAuth checks HTTP Basic credentials, the payment gateway's optional
// scheme.
type BasicAuth struct {
	// Credentials are the accepted user/password pairs; any one matches.
	Credentials []BasicCredential `json:"credentials,omitempty"`

	v *verify.Basic
}

// BasicCredential is one accepted HTTP Basic user/password pair.
type BasicCredential struct {
	// Username may be a placeholder; it must not contain ':'.
	Username string `json:"username"`
	// Password may be a placeholder.
	Password string `json:"password"`
}

// CaddyModule returns the Caddy module information.
func (BasicAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".basic",
		New: func() caddy.Module { return new(BasicAuth) },
	}
}

// Provision resolves the credentials and builds the check.
func (a *BasicAuth) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	creds := make([]verify.Credential, 0, len(a.Credentials))
	for j, c := range a.Credentials {
		user, err := resolve(c.Username, repl)
		if err != nil {
			return fmt.Errorf("credential #%d username: %w", j+1, err)
		}
		pass, err := resolve(c.Password, repl)
		if err != nil {
			return fmt.Errorf("credential #%d password: %w", j+1, err)
		}
		creds = append(creds, verify.Credential{Username: user, Password: pass})
	}
	var err error
	a.v, err = verify.NewBasic(creds...)
	return err
}

// Verifier implements AuthScheme.
func (a *BasicAuth) Verifier() verify.Verifier { return a.v }

// UnmarshalCaddyfile reads
//
//	auth basic <username> <password>
func (a *BasicAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Err("auth basic: want <username> <password>")
	}
	a.Credentials = []BasicCredential{{Username: args[0], Password: args[1]}}
	return noAuthBlock(d, "basic")
}

// merge adds the pair of a later line: a request needs one of them.
func (a *BasicAuth) merge(other AuthScheme) bool {
	o, ok := other.(*BasicAuth)
	if ok {
		a.Credentials = append(a.Credentials, o.Credentials...)
	}
	return ok
}
