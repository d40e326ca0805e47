package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// The auth schemes are guest modules of the handler, one file each
// (auth_<scheme>.go), in this package rather than one of their own: they
// share the handler's Caddyfile helpers and its placeholder rules, and a
// package of their own would have to export the Caddyfile merge hook that
// only the handler calls.

// AuthNamespace is the Caddy module namespace of the auth schemes; a
// module's name is the "scheme" of an auth entry.
const AuthNamespace = "http.handlers.webhook_gateway.auth"

// AuthScheme is implemented by every module in AuthNamespace. Provision
// resolves the scheme's secrets and builds its check; Verifier returns it.
type AuthScheme interface {
	caddy.Module
	caddy.Provisioner
	caddyfile.Unmarshaler
	// Verifier is the check built at Provision, from package verify.
	Verifier() verify.Verifier
}

// authMerger is an auth scheme whose repeated Caddyfile lines add
// credentials to one check (rotation) instead of adding a check.
type authMerger interface {
	// merge absorbs other, a scheme parsed from a later line, when both
	// are the same check, and reports whether it did.
	merge(other AuthScheme) bool
}

// errNoAuth refuses a route that names no auth scheme at all, so a
// forgotten auth line cannot leave a route open.
var errNoAuth = errors.New(`no auth configured: add an auth line (e.g. "auth hmac {env.SIGNATURE_KEY}"), ` +
	`or "auth none" (JSON {"scheme": "none"}) if the route is meant to accept unauthenticated requests`)

// loadAuth loads and provisions the route's auth modules and returns their
// checks and the request headers that carry secrets.
func (h *Handler) loadAuth(ctx caddy.Context) ([]verify.Verifier, []string, error) {
	if len(h.Auth) == 0 {
		return nil, nil, errNoAuth
	}
	loaded, err := ctx.LoadModule(h, "Auth")
	if err != nil {
		return nil, nil, fmt.Errorf("loading auth: %w", err)
	}
	mods := loaded.([]any)
	var (
		verifiers []verify.Verifier
		headers   []string
	)
	for _, mod := range mods {
		v := mod.(AuthScheme).Verifier()
		if _, open := v.(verify.None); open && len(mods) > 1 {
			return nil, nil, errors.New(`auth none cannot be combined with another auth scheme: remove "auth none", or the other auth lines`)
		}
		verifiers = append(verifiers, v)
		if sc, ok := v.(verify.SecretCarrier); ok {
			headers = append(headers, sc.SecretHeaders()...)
		}
	}
	return verifiers, headers, nil
}

// unmarshalAuth parses one "auth <scheme> ..." line with the scheme's own
// module, merging it into an earlier line of the same check.
func unmarshalAuth(d *caddyfile.Dispenser, schemes []AuthScheme) ([]AuthScheme, error) {
	if !d.NextArg() {
		return nil, d.Errf("auth: missing scheme (want %s)", authSchemeNames())
	}
	name := d.Val()
	if _, err := caddy.GetModule(AuthNamespace + "." + name); err != nil {
		return nil, d.Errf("auth: unknown scheme %q (want %s)", name, authSchemeNames())
	}
	unm, err := caddyfile.UnmarshalModule(d, AuthNamespace+"."+name)
	if err != nil {
		return nil, err
	}
	s := unm.(AuthScheme)
	for _, prev := range schemes {
		if m, ok := prev.(authMerger); ok && m.merge(s) {
			return schemes, nil
		}
	}
	return append(schemes, s), nil
}

// authJSON encodes parsed schemes as the handler's Auth entries.
func authJSON(schemes []AuthScheme) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(schemes))
	for _, s := range schemes {
		out = append(out, caddyconfig.JSONModuleObject(s, "scheme", s.CaddyModule().ID.Name(), nil))
	}
	return out
}

// authSchemeNames lists the registered schemes for error messages.
func authSchemeNames() string {
	var names []string
	for _, m := range caddy.GetModules(AuthNamespace) {
		names = append(names, m.ID.Name())
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// noAuthBlock refuses an options block after a scheme that has none.
func noAuthBlock(d *caddyfile.Dispenser, scheme string) error {
	if d.NextBlock(0) {
		return d.Errf("auth %s: takes no options block", scheme)
	}
	return nil
}

// resolveAll resolves every secret of a list; see resolve.
func resolveAll(in []string) ([]string, error) {
	repl := caddy.NewReplacer()
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
