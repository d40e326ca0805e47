package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(StandardWebhooksAuth{})
}

// Interface guard.
var _ AuthScheme = (*StandardWebhooksAuth)(nil)

// StandardWebhooksAuth verifies a sender that follows the Standard
// Webhooks specification: webhook-id, webhook-timestamp (Unix seconds) and
// webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", several
// separated by spaces while the sender rotates its secret).
type StandardWebhooksAuth struct {
	// Secrets are the accepted signing secrets, "whsec_" followed by the
	// base64 of the key (the prefix is optional); any one matches.
	// Placeholders are resolved at load time.
	Secrets []string `json:"secrets,omitempty"`

	// Tolerance is how far webhook-timestamp may be from the gateway's
	// clock, either way. Default: 5m.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	v *verify.HMAC
}

// CaddyModule returns the Caddy module information.
func (StandardWebhooksAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".standard_webhooks",
		New: func() caddy.Module { return new(StandardWebhooksAuth) },
	}
}

// Provision resolves the secrets and builds the check.
func (a *StandardWebhooksAuth) Provision(caddy.Context) error {
	keys, err := resolveAll(a.Secrets)
	if err != nil {
		return err
	}
	a.v, err = verify.NewHMAC(verify.HMACConfig{
		Format:    verify.FormatStandardWebhooks,
		Keys:      keys,
		Tolerance: time.Duration(a.Tolerance),
	})
	return err
}

// Verifier implements AuthScheme. Its secret header is webhook-signature.
func (a *StandardWebhooksAuth) Verifier() verify.Verifier { return a.v }

// UnmarshalCaddyfile reads
//
//	auth standard_webhooks <whsec_...>... {
//	    tolerance <duration>
//	}
func (a *StandardWebhooksAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	a.Secrets = d.RemainingArgs()
	if len(a.Secrets) == 0 {
		return d.Err("auth standard_webhooks: want <whsec_...>...")
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tolerance":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.Tolerance = dur
		default:
			return d.Errf("auth standard_webhooks: unrecognized option %q", d.Val())
		}
	}
	return nil
}
