package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// A credential vouches for its own route only. An event's source is what a
// backend trusts as the event's origin, and the first half of its dedup key:
// a route that writes another route's source with a weaker credential could
// forge that route's events, and pre-empt its genuine ones (whose ids may be
// counters) so that they are answered "duplicate" and never delivered. So
// routes of one config that write one source must have the same auth, unless
// every one of them says share_source.

// ErrSharedSource is wrapped by the Provision error of a route whose source
// another route of the same config writes with different auth.
var ErrSharedSource = errors.New("written by two routes with different auth")

// sourceClaim is one route's claim on a source within one loaded config.
type sourceClaim struct {
	auth  [sha256.Size]byte // authFingerprint of the route's auth
	share bool              // the route set share_source
	route string            // how an error names the route: provider and auth schemes
}

// fingerprintKey keys authFingerprint. Drawn once per process and never
// written anywhere, it makes a fingerprint useless for guessing a secret.
var fingerprintKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand)
	return k
}()

// authFingerprint identifies a route's auth config: the auth entries with
// their placeholders resolved, re-encoded with sorted keys and sorted among
// themselves (every check must pass, so their order means nothing). The
// same credentials written through different placeholders match; the same
// check spelled differently (a default written out, a list of secrets in
// another order) does not, which only ever errs towards refusing. Only a
// keyed hash is kept.
func authFingerprint(entries []json.RawMessage) ([sha256.Size]byte, error) {
	repl := caddy.NewReplacer()
	canon := make([][]byte, 0, len(entries))
	for i, raw := range entries {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("auth entry #%d: %w", i+1, err)
		}
		b, err := json.Marshal(resolvePlaceholders(v, repl))
		if err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("auth entry #%d: %w", i+1, err)
		}
		canon = append(canon, b)
	}
	slices.SortFunc(canon, bytes.Compare)
	mac := hmac.New(sha256.New, fingerprintKey)
	for _, b := range canon {
		_ = binary.Write(mac, binary.BigEndian, uint64(len(b)))
		mac.Write(b)
	}
	var sum [sha256.Size]byte
	copy(sum[:], mac.Sum(nil))
	return sum, nil
}

// resolvePlaceholders replaces the placeholders Caddy knows at load time
// ({env.*}, {file.*}) in every string of a decoded JSON value. Request
// placeholders, such as those of a signed_content template, stay as written.
func resolvePlaceholders(v any, repl *caddy.Replacer) any {
	switch x := v.(type) {
	case string:
		return repl.ReplaceKnown(x, "")
	case []any:
		for i := range x {
			x[i] = resolvePlaceholders(x[i], repl)
		}
	case map[string]any:
		for k := range x {
			x[k] = resolvePlaceholders(x[k], repl)
		}
	}
	return v
}

// describeRoute names a route in an error by what it is, never by a
// secret: its provider and its auth schemes.
func describeRoute(provider string, entries []json.RawMessage) string {
	var schemes []string
	for _, raw := range entries {
		var e struct {
			Scheme string `json:"scheme"`
		}
		_ = json.Unmarshal(raw, &e)
		schemes = append(schemes, e.Scheme)
	}
	return "provider " + provider + ", auth " + strings.Join(schemes, " + ")
}

// newSourceClaim describes this route's claim on its source. It must run
// before loadAuth, which clears the raw auth entries once it has loaded
// them.
func (h *Handler) newSourceClaim() (*sourceClaim, error) {
	fp, err := authFingerprint(h.Auth)
	if err != nil {
		return nil, err
	}
	return &sourceClaim{auth: fp, share: h.ShareSource, route: describeRoute(h.Provider, h.Auth)}, nil
}

// claimSource records that this route writes its source in the config
// being loaded, or refuses it (see ErrSharedSource).
func (h *Handler) claimSource(cl *sourceClaim) error {
	release, err := h.config.claim(h.source(), cl)
	if err != nil {
		return err
	}
	h.cleanup = append(h.cleanup, release)
	return nil
}
