package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func init() {
	caddy.RegisterModule(HMACAuth{})
}

// Interface guard.
var _ AuthScheme = (*HMACAuth)(nil)

// HMACAuth checks a header carrying an HMAC of the raw body, optionally
// joined with a signed timestamp. The defaults match the payment gateway
// (X-Signature: lowercase hex HMAC-SHA256 of the body); the other fields
// describe other senders, e.g. the loyalty platform's hosted sender or a
// Stripe-style t=...,v1=... header.
type HMACAuth struct {
	// Secrets are the accepted HMAC keys; a signature made with any one
	// passes, so a key can be rotated. Placeholders are resolved at load
	// time.
	Secrets []string `json:"secrets,omitempty"`

	// Header carries the signature. Default: X-Signature;
	// Stripe-Signature in the stripe format.
	Header string `json:"header,omitempty"`

	// Hash is sha256 (default), sha1 or sha512.
	Hash string `json:"hash,omitempty"`

	// Encoding is how the MAC is written: hex (default, either case),
	// base64 or base64url (padding optional).
	Encoding string `json:"encoding,omitempty"`

	// Prefix precedes the encoded MAC in the header, e.g. "sha256=";
	// plain format only. Default: none.
	Prefix string `json:"prefix,omitempty"`

	// Format is the layout of the signature header: "plain" (default:
	// prefix and MAC), "stripe" ("t=<unix>,v1=<mac>[,v1=...]", the
	// timestamp taken from t) or "standard_webhooks" (the layout of the
	// standard_webhooks scheme, whose other defaults it takes).
	Format string `json:"format,omitempty"`

	// KeyEncoding is "raw" (default: the secret's bytes as written, a
	// whsec_ prefix included, as Stripe does) or "base64" (the Standard
	// Webhooks rule: an optional whsec_ prefix, then base64).
	KeyEncoding string `json:"key_encoding,omitempty"`

	// TimestampHeader carries the signing time in Unix seconds (e.g.
	// X-Webhook-Timestamp); a request further than Tolerance from the
	// gateway's clock is refused. Default: none.
	TimestampHeader string `json:"timestamp_header,omitempty"`

	// Tolerance is how far the timestamp may be from the gateway's clock,
	// either way. Default: 5m.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	// SignedContent is the template of the signed bytes: {body} exactly
	// once, {timestamp}, {header.<Name>}, joined by literal text, e.g.
	// "{timestamp}.{body}". Default: "{body}" ("{timestamp}.{body}" in the
	// stripe format).
	SignedContent string `json:"signed_content,omitempty"`

	// AlgorithmHeader names a header where the sender states its hash
	// (e.g. X-Webhook-Signature-Algorithm); a request naming another hash
	// than Hash is refused. Default: none.
	AlgorithmHeader string `json:"algorithm_header,omitempty"`

	v *verify.HMAC
}

// CaddyModule returns the Caddy module information.
func (HMACAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AuthNamespace + ".hmac",
		New: func() caddy.Module { return new(HMACAuth) },
	}
}

// Provision resolves the keys and builds the check.
func (a *HMACAuth) Provision(caddy.Context) error {
	keys, err := resolveAll(a.Secrets)
	if err != nil {
		return err
	}
	a.v, err = verify.NewHMAC(verify.HMACConfig{
		Header:          a.Header,
		Hash:            a.Hash,
		Encoding:        a.Encoding,
		Prefix:          a.Prefix,
		Keys:            keys,
		KeyEncoding:     a.KeyEncoding,
		Format:          a.Format,
		TimestampHeader: a.TimestampHeader,
		Tolerance:       time.Duration(a.Tolerance),
		SignedContent:   a.SignedContent,
		AlgorithmHeader: a.AlgorithmHeader,
	})
	return err
}

// Verifier implements AuthScheme.
func (a *HMACAuth) Verifier() verify.Verifier { return a.v }

// UnmarshalCaddyfile reads
//
//	auth hmac <key>... {
//	    header           <name>
//	    hash             sha256|sha1|sha512
//	    encoding         hex|base64|base64url
//	    prefix           <prefix>
//	    format           plain|stripe|standard_webhooks
//	    key_encoding     raw|base64
//	    timestamp_header <name>
//	    tolerance        <duration>
//	    signed_content   <template>
//	    algorithm_header <name>
//	}
func (a *HMACAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the scheme
	a.Secrets = d.RemainingArgs()
	if len(a.Secrets) == 0 {
		return d.Err("auth hmac: want <key>...")
	}
	options := map[string]*string{
		"header":           &a.Header,
		"hash":             &a.Hash,
		"encoding":         &a.Encoding,
		"prefix":           &a.Prefix,
		"format":           &a.Format,
		"key_encoding":     &a.KeyEncoding,
		"timestamp_header": &a.TimestampHeader,
		"signed_content":   &a.SignedContent,
		"algorithm_header": &a.AlgorithmHeader,
	}
	for d.NextBlock(0) {
		if d.Val() == "tolerance" {
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.Tolerance = dur
			continue
		}
		dst, ok := options[d.Val()]
		if !ok {
			return d.Errf("auth hmac: unrecognized option %q", d.Val())
		}
		if err := oneArg(d, dst); err != nil {
			return err
		}
	}
	return nil
}
