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
	"sync"

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

// claimTable records, per loaded config, the routes that write each source.
// Caddy provisions a config's handlers one at a time and keeps the old
// config running beside the new one during a reload, so claims are kept by
// config: Caddy gives every config load a metrics registry of its own, which
// every module of that config sees (caddy.Context.GetMetricsRegistry), and
// which is the key here. A route's claim is dropped at its Cleanup.
type claimTable struct {
	mu      sync.Mutex
	configs map[any]map[string][]*sourceClaim
}

// sourceClaims is the process's table.
var sourceClaims = &claimTable{configs: map[any]map[string][]*sourceClaim{}}

// claim adds cl on source for config, or reports the route of the same
// config that writes source with other auth while either of the two does
// not share it. The returned function drops the claim.
func (c *claimTable) claim(config any, source string, cl *sourceClaim) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, other := range c.configs[config][source] {
		if other.auth == cl.auth || (other.share && cl.share) {
			continue
		}
		return nil, fmt.Errorf("source %q: %w (this route: %s; another route of this config: %s); "+
			"a credential vouches for its own route's source only: give one of the routes a source of its own, "+
			`or, if both are meant to write %q, set share_source on both (JSON "share_source": true)`,
			source, ErrSharedSource, cl.route, other.route, source)
	}
	if c.configs[config] == nil {
		c.configs[config] = map[string][]*sourceClaim{}
	}
	c.configs[config][source] = append(c.configs[config][source], cl)
	var once sync.Once
	return func() { once.Do(func() { c.drop(config, source, cl) }) }, nil
}

func (c *claimTable) drop(config any, source string, cl *sourceClaim) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bySource := c.configs[config]
	claims := slices.DeleteFunc(bySource[source], func(x *sourceClaim) bool { return x == cl })
	if len(claims) == 0 {
		delete(bySource, source)
	} else {
		bySource[source] = claims
	}
	if len(bySource) == 0 {
		delete(c.configs, config)
	}
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
func (h *Handler) claimSource(ctx caddy.Context, cl *sourceClaim) error {
	release, err := sourceClaims.claim(ctx.GetMetricsRegistry(), h.source(), cl)
	if err != nil {
		return err
	}
	h.cleanup = append(h.cleanup, release)
	return nil
}
