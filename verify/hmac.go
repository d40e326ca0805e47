package verify

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // some providers still sign with HMAC-SHA1; HMAC-SHA1 is not broken.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults of HMACConfig.
const (
	DefaultHMACHeader   = "X-Signature"
	DefaultHMACHash     = "sha256"
	DefaultHMACEncoding = "hex"
	// DefaultTolerance is how far a signed timestamp may be from the
	// gateway's clock, either way; the Standard Webhooks value.
	DefaultTolerance = 5 * time.Minute
)

// Signature header formats (HMACConfig.Format).
const (
	// FormatPlain: the header is Prefix followed by the encoded MAC.
	FormatPlain = "plain"
	// FormatStripe: the header is "t=<unix seconds>,v1=<hex MAC>", with
	// one v1 entry per secret the sender signs with; other entries are
	// ignored. The timestamp comes from t.
	FormatStripe = "stripe"
	// FormatStandardWebhooks: the header is a space-separated list of
	// "v1,<base64 MAC>"; entries of other versions are ignored.
	FormatStandardWebhooks = "standard_webhooks"
)

// Key encodings (HMACConfig.KeyEncoding).
const (
	// KeyRaw: the key is the secret's bytes as configured, a "whsec_"
	// prefix included.
	KeyRaw = "raw"
	// KeyBase64: the Standard Webhooks rule: an optional "whsec_" prefix,
	// then the standard base64 of the key.
	KeyBase64 = "base64"
)

const whsecPrefix = "whsec_"

// maxSignatures bounds the signatures read from one header, so a client
// cannot make one request cost more comparisons than a sender in the middle
// of a rotation would.
const maxSignatures = 8

// HMACConfig configures an HMAC verifier. The zero value of every field but
// Keys is a default; Format changes the defaults as its doc says.
type HMACConfig struct {
	// Header carries the signature. Default: X-Signature (the payment
	// gateway's header); Stripe-Signature in the stripe format,
	// Webhook-Signature in the standard_webhooks format.
	Header string
	// Hash is sha256 (default), sha1 or sha512.
	Hash string
	// Encoding is how the MAC is written in the header: "hex" (default;
	// upper or lower case digits are both accepted, as case carries no
	// information), "base64" (standard alphabet; the only one the
	// standard_webhooks format allows, and its default) or "base64url"
	// (URL alphabet); for the base64 forms, padding is optional.
	Encoding string
	// Prefix precedes the encoded MAC in the header, e.g. "sha256=".
	// Matched without regard to ASCII case. Default: none. Plain format
	// only.
	Prefix string
	// Keys are the accepted HMAC keys; a signature made with any one
	// passes. At least one, none empty.
	Keys []string
	// KeyEncoding says how a key's bytes are written: KeyRaw (default in
	// the plain and stripe formats, as Stripe uses its whsec_ secrets) or
	// KeyBase64 (default in the standard_webhooks format).
	KeyEncoding string
	// Format is how the signature header is laid out: FormatPlain
	// (default), FormatStripe or FormatStandardWebhooks.
	Format string
	// TimestampHeader, when set, carries the time the sender signed the
	// request, in Unix seconds; a request outside Tolerance of the
	// gateway's clock is refused. Default: none in the plain format,
	// Webhook-Timestamp in the standard_webhooks format; the stripe
	// format reads t= from the signature header instead.
	TimestampHeader string
	// Tolerance is how far the timestamp may be from the gateway's clock,
	// in the past or in the future. Default: DefaultTolerance.
	Tolerance time.Duration
	// SignedContent is the template of the signed bytes: {body} (the raw
	// body, exactly once), {timestamp} (the timestamp as sent) and
	// {header.<Name>} (a request header's value, which must be present;
	// also written {http.request.header.<Name>}) joined by literal text. Default: "{body}" in the plain format,
	// "{timestamp}.{body}" in the stripe format and
	// "{header.Webhook-Id}.{timestamp}.{body}" in the standard_webhooks
	// format.
	SignedContent string
	// AlgorithmHeader, when set, names a header in which the sender
	// states its hash (e.g. X-Webhook-Signature-Algorithm: HMAC-SHA256).
	// A request naming another hash than Hash is refused; one without the
	// header is verified as usual, since the MAC alone proves the hash.
	AlgorithmHeader string
	// Now is the clock the timestamp is checked against. Default:
	// time.Now.
	Now func() time.Time
}

// HMAC checks a header carrying an HMAC of the raw request body, optionally
// joined with a signed timestamp and other headers.
type HMAC struct {
	header    string
	prefix    string
	format    string
	encoding  string
	decode    func(string) ([]byte, error)
	hashName  string
	size      int
	tsHeader  string
	tolerance time.Duration
	algHeader string
	content   []part
	headers   int // number of header parts in content
	now       func() time.Time
	// pools hold keyed hash states per key: hmac.New costs two hash
	// allocations and key scheduling, Reset only restores the keyed state.
	pools []*sync.Pool
}

// NewHMAC builds an HMAC verifier; see HMACConfig for the defaults.
func NewHMAC(c HMACConfig) (*HMAC, error) {
	format, defaults, err := formatDefaults(c)
	if err != nil {
		return nil, err
	}
	header, err := headerName("signature", c.Header, defaults.header)
	if err != nil {
		return nil, err
	}
	tsHeader, err := headerName("timestamp", c.TimestampHeader, defaults.tsHeader)
	if err != nil {
		return nil, err
	}
	var algHeader string
	if strings.TrimSpace(c.AlgorithmHeader) != "" {
		if algHeader, err = headerName("algorithm", c.AlgorithmHeader, ""); err != nil {
			return nil, err
		}
	}
	hashName, newHash, err := hmacHash(c.Hash)
	if err != nil {
		return nil, err
	}
	encoding := cmp.Or(strings.ToLower(strings.TrimSpace(c.Encoding)), defaults.encoding)
	decode, err := signatureDecoder(encoding, c.Encoding)
	if err != nil {
		return nil, err
	}
	if format == FormatStandardWebhooks && encoding != "base64" {
		return nil, configErr("hmac: the %s format carries base64 signatures, not %s", format, encoding)
	}

	template := cmp.Or(c.SignedContent, defaults.content)
	content, err := parseSignedContent(template)
	if err != nil {
		return nil, err
	}
	timestamped := tsHeader != "" || format == FormatStripe
	v := &HMAC{
		header:    header,
		prefix:    c.Prefix,
		format:    format,
		encoding:  encoding,
		decode:    decode,
		hashName:  hashName,
		size:      newHash().Size(),
		tsHeader:  tsHeader,
		tolerance: c.Tolerance,
		algHeader: algHeader,
		content:   content,
		now:       c.Now,
	}
	for _, p := range content {
		switch {
		case p.kind == partHeader:
			v.headers++
		case p.kind == partTimestamp && !timestamped:
			return nil, configErr("hmac: signed content %q has {timestamp} but no timestamp header is set", template)
		}
	}
	switch {
	case c.Tolerance < 0:
		return nil, configErr("hmac: negative tolerance %s", c.Tolerance)
	case c.Tolerance > 0 && !timestamped:
		return nil, configErr("hmac: a tolerance needs a timestamp header")
	case c.Tolerance == 0:
		v.tolerance = DefaultTolerance
	}
	if v.now == nil {
		v.now = time.Now
	}
	keyEncoding := cmp.Or(strings.ToLower(strings.TrimSpace(c.KeyEncoding)), defaults.keyEncoding)
	if v.pools, err = keyPools(c, keyEncoding, newHash); err != nil {
		return nil, err
	}
	return v, nil
}

// hmacDefaults are the settings a format implies when the config leaves
// them out.
type hmacDefaults struct{ header, encoding, keyEncoding, tsHeader, content string }

// formatDefaults checks c's format against the settings it rules out and
// returns the format's name and defaults.
func formatDefaults(c HMACConfig) (string, hmacDefaults, error) {
	format := strings.ToLower(strings.TrimSpace(c.Format))
	defaults := hmacDefaults{
		header: DefaultHMACHeader, encoding: DefaultHMACEncoding, keyEncoding: KeyRaw, content: "{body}",
	}
	switch format {
	case "", FormatPlain:
		format = FormatPlain
	case FormatStripe:
		defaults.header = "Stripe-Signature"
		defaults.content = "{timestamp}.{body}"
		if c.TimestampHeader != "" {
			return "", defaults, configErr("hmac: the stripe format reads the timestamp from t= in the signature header, so timestamp_header must be unset")
		}
	case FormatStandardWebhooks:
		defaults.header = "Webhook-Signature"
		defaults.encoding = "base64"
		defaults.keyEncoding = KeyBase64
		defaults.tsHeader = "Webhook-Timestamp"
		defaults.content = "{header.Webhook-Id}.{timestamp}.{body}"
	default:
		return "", defaults, configErr("hmac: unknown format %q (want %s, %s or %s)", c.Format, FormatPlain, FormatStripe, FormatStandardWebhooks)
	}
	if c.Prefix != "" && format != FormatPlain {
		return "", defaults, configErr("hmac: a prefix is only read in the %s format", FormatPlain)
	}
	return format, defaults, nil
}

// hmacHash returns the configured hash (sha256 when empty) by its name.
func hmacHash(configured string) (string, func() hash.Hash, error) {
	switch name := strings.ToLower(strings.TrimSpace(configured)); name {
	case "", "sha256":
		return DefaultHMACHash, sha256.New, nil
	case "sha1":
		return name, sha1.New, nil
	case "sha512":
		return name, sha512.New, nil
	}
	return "", nil, configErr("hmac: unknown hash %q (want sha256, sha1 or sha512)", configured)
}

// signatureDecoder returns the decoder of signatures in encoding; as is the
// setting as configured, for the error.
func signatureDecoder(encoding, as string) (func(string) ([]byte, error), error) {
	switch encoding {
	case "hex":
		return hex.DecodeString, nil
	case "base64":
		return decodeBase64(base64.StdEncoding), nil
	case "base64url":
		return decodeBase64(base64.URLEncoding), nil
	}
	return nil, configErr("hmac: unknown encoding %q (want hex, base64 or base64url)", as)
}

// keyPools decodes c's keys and returns a pool of keyed hash states for
// each.
func keyPools(c HMACConfig, keyEncoding string, newHash func() hash.Hash) ([]*sync.Pool, error) {
	if keyEncoding != KeyRaw && keyEncoding != KeyBase64 {
		return nil, configErr("hmac: unknown key encoding %q (want %s or %s)", c.KeyEncoding, KeyRaw, KeyBase64)
	}
	if len(c.Keys) == 0 {
		return nil, configErr("hmac: no keys")
	}
	pools := make([]*sync.Pool, len(c.Keys))
	for i, k := range c.Keys {
		if k == "" {
			return nil, configErr("hmac: key #%d is empty", i+1)
		}
		key := []byte(k)
		if keyEncoding == KeyBase64 {
			// The decoder's error would quote a position in the secret.
			var err error
			if key, err = decodeBase64(base64.StdEncoding)(strings.TrimPrefix(k, whsecPrefix)); err != nil || len(key) == 0 {
				return nil, configErr("hmac: key #%d is not base64 after an optional %s prefix", i+1, whsecPrefix)
			}
		}
		pools[i] = &sync.Pool{New: func() any { return hmac.New(newHash, key) }}
	}
	return pools, nil
}

// headerName checks a configured header name, or returns def when it is
// empty.
func headerName(what, name, def string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = def
	}
	if name == "" {
		return "", nil
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return "", configErr("hmac: %s header %q is not a valid header name", what, name)
	}
	return http.CanonicalHeaderKey(name), nil
}

func decodeBase64(enc *base64.Encoding) func(string) ([]byte, error) {
	return func(s string) ([]byte, error) {
		if len(s)%4 != 0 {
			return enc.WithPadding(base64.NoPadding).DecodeString(s)
		}
		return enc.DecodeString(s)
	}
}

// Verify implements Verifier: it computes the MAC of the signed content
// with every key and compares each with every received MAC. The timestamp
// is checked after the MAC, so a stale request is reported as stale only
// when it is authentic.
func (v *HMAC) Verify(r *http.Request, body []byte) error {
	raw, err := singleHeader(r, v.header)
	if err != nil {
		return err
	}
	var (
		ts   string
		buf  [maxSignatures][]byte
		macs [][]byte
	)
	switch v.format {
	case FormatStripe:
		ts, macs, err = v.stripeMACs(raw, buf[:0])
	case FormatStandardWebhooks:
		macs, err = v.versionedMACs(raw, buf[:0])
	default:
		var mac []byte
		mac, err = v.plainMAC(raw)
		macs = append(buf[:0], mac)
	}
	if err != nil {
		return err
	}

	timestampFrom := v.header
	if v.tsHeader != "" {
		if ts, err = singleHeader(r, v.tsHeader); err != nil {
			return err
		}
		timestampFrom = v.tsHeader
	}
	var signedAt time.Time
	timestamped := v.tsHeader != "" || v.format == FormatStripe
	if timestamped {
		if signedAt, err = parseUnix(ts); err != nil {
			return fmt.Errorf("header %s timestamp: %w", timestampFrom, err)
		}
	}

	if v.algHeader != "" {
		if err := v.checkAlgorithm(r); err != nil {
			return err
		}
	}

	var values []string
	if v.headers > 0 {
		values = make([]string, 0, v.headers)
		for _, p := range v.content {
			if p.kind == partHeader {
				val, err := singleHeader(r, p.name)
				if err != nil {
					return fmt.Errorf("signed %w", err)
				}
				values = append(values, val)
			}
		}
	}

	if !v.match(body, ts, values, macs) {
		return fmt.Errorf("header %s mismatch: %w", v.header, ErrMismatch)
	}
	if timestamped {
		return v.checkAge(signedAt, timestampFrom)
	}
	return nil
}

// match reports whether any key's MAC of the signed content equals any of
// macs. No early exit: every key and every MAC is tried whatever the
// outcome.
func (v *HMAC) match(body []byte, ts string, values []string, macs [][]byte) bool {
	var sum [sha512.Size]byte
	match := false
	for _, pool := range v.pools {
		h := pool.Get().(hash.Hash)
		h.Reset()
		next := 0
		for _, p := range v.content {
			switch p.kind {
			case partLiteral:
				h.Write(p.lit)
			case partBody:
				h.Write(body)
			case partTimestamp:
				h.Write([]byte(ts))
			case partHeader:
				h.Write([]byte(values[next]))
				next++
			}
		}
		got := h.Sum(sum[:0])
		for _, m := range macs {
			if hmac.Equal(got, m) {
				match = true
			}
		}
		pool.Put(h)
	}
	return match
}

// Tolerance implements TimestampChecker: the configured tolerance when the
// signature carries a timestamp (a timestamp header, or the stripe
// format's t=), else zero.
func (v *HMAC) Tolerance() time.Duration {
	if v.tsHeader == "" && v.format != FormatStripe {
		return 0
	}
	return v.tolerance
}

// SignsHeader implements HeaderSigner: whether the signed content has a
// {header.<name>} part for name.
func (v *HMAC) SignsHeader(name string) bool {
	name = http.CanonicalHeaderKey(name)
	for _, p := range v.content {
		if p.kind == partHeader && p.name == name {
			return true
		}
	}
	return false
}

// SecretHeaders implements SecretCarrier. A MAC is not a key, but it is
// stripped too: the backend has no use for it, and it would let anyone who
// reads the stored request replay it against the provider's other
// receivers.
func (v *HMAC) SecretHeaders() []string { return []string{v.header} }
