package verify

import (
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

	"golang.org/x/net/http/httpguts"
)

// Defaults of HMACConfig.
const (
	DefaultHMACHeader   = "X-Signature"
	DefaultHMACHash     = "sha256"
	DefaultHMACEncoding = "hex"
)

// HMACConfig configures an HMAC verifier.
type HMACConfig struct {
	// Header carries the signature. Default: X-Signature (the payment
	// gateway's header).
	Header string
	// Hash is sha256 (default), sha1 or sha512.
	Hash string
	// Encoding is how the MAC is written in the header: "hex" (default;
	// upper or lower case digits are both accepted, as case carries no
	// information), "base64" (standard alphabet) or "base64url" (URL
	// alphabet); for the base64 forms, padding is optional.
	Encoding string
	// Prefix precedes the encoded MAC in the header, e.g. "sha256=".
	// Matched without regard to ASCII case. Default: none.
	Prefix string
	// Keys are the accepted HMAC keys; a signature made with any one
	// passes. At least one, none empty.
	Keys []string
}

// HMAC checks a header carrying an HMAC of the raw request body.
type HMAC struct {
	header   string
	prefix   string
	encoding string
	decode   func(string) ([]byte, error)
	size     int
	// pools hold keyed hash states per key: hmac.New costs two hash
	// allocations and key scheduling, Reset only restores the keyed state.
	pools []*sync.Pool
}

// NewHMAC builds an HMAC verifier; see HMACConfig for the defaults.
func NewHMAC(c HMACConfig) (*HMAC, error) {
	header := strings.TrimSpace(c.Header)
	if header == "" {
		header = DefaultHMACHeader
	}
	if !httpguts.ValidHeaderFieldName(header) {
		return nil, configErr("hmac: %q is not a valid header name", header)
	}
	header = http.CanonicalHeaderKey(header)

	var newHash func() hash.Hash
	switch strings.ToLower(strings.TrimSpace(c.Hash)) {
	case "", "sha256":
		newHash = sha256.New
	case "sha1":
		newHash = sha1.New
	case "sha512":
		newHash = sha512.New
	default:
		return nil, configErr("hmac: unknown hash %q (want sha256, sha1 or sha512)", c.Hash)
	}

	var decode func(string) ([]byte, error)
	encoding := strings.ToLower(strings.TrimSpace(c.Encoding))
	switch encoding {
	case "", "hex":
		encoding = DefaultHMACEncoding
		decode = hex.DecodeString
	case "base64":
		decode = decodeBase64(base64.StdEncoding)
	case "base64url":
		decode = decodeBase64(base64.URLEncoding)
	default:
		return nil, configErr("hmac: unknown encoding %q (want hex, base64 or base64url)", c.Encoding)
	}

	if len(c.Keys) == 0 {
		return nil, configErr("hmac: no keys")
	}
	v := &HMAC{
		header:   header,
		prefix:   c.Prefix,
		encoding: encoding,
		decode:   decode,
		size:     newHash().Size(),
		pools:    make([]*sync.Pool, len(c.Keys)),
	}
	for i, k := range c.Keys {
		if k == "" {
			return nil, configErr("hmac: key #%d is empty", i+1)
		}
		key := []byte(k)
		v.pools[i] = &sync.Pool{New: func() any { return hmac.New(newHash, key) }}
	}
	return v, nil
}

func decodeBase64(enc *base64.Encoding) func(string) ([]byte, error) {
	return func(s string) ([]byte, error) {
		if len(s)%4 != 0 {
			return enc.WithPadding(base64.NoPadding).DecodeString(s)
		}
		return enc.DecodeString(s)
	}
}

// Verify implements Verifier: it computes the HMAC of body with every key
// and compares each with the received MAC.
func (v *HMAC) Verify(r *http.Request, body []byte) error {
	got, err := singleHeader(r, v.header)
	if err != nil {
		return err
	}
	got = strings.TrimSpace(got)
	if v.prefix != "" {
		if len(got) < len(v.prefix) || !strings.EqualFold(got[:len(v.prefix)], v.prefix) {
			return fmt.Errorf("header %s lacks the configured prefix: %w", v.header, ErrMalformed)
		}
		got = got[len(v.prefix):]
	}
	mac, err := v.decode(got)
	if err != nil {
		// The decoder's error quotes the offending byte and its offset;
		// both come from the credential, so neither is repeated.
		return fmt.Errorf("header %s is not valid %s: %w", v.header, v.encoding, ErrMalformed)
	}
	if len(mac) != v.size {
		// A MAC's length is public (it follows from the hash), so this
		// early answer reveals nothing about the keys.
		return fmt.Errorf("header %s has %d bytes, want %d: %w", v.header, len(mac), v.size, ErrMalformed)
	}

	var sum [sha512.Size]byte
	match := false
	for _, pool := range v.pools {
		h := pool.Get().(hash.Hash)
		h.Reset()
		h.Write(body)
		// No early exit: every key is tried whatever the outcome.
		if hmac.Equal(h.Sum(sum[:0]), mac) {
			match = true
		}
		pool.Put(h)
	}
	if !match {
		return fmt.Errorf("header %s mismatch: %w", v.header, ErrMismatch)
	}
	return nil
}

// SecretHeaders implements SecretCarrier. A MAC is not a key, but it is
// stripped too: the backend has no use for it, and it would let anyone who
// reads the stored request replay it against the provider's other
// receivers.
func (v *HMAC) SecretHeaders() []string { return []string{v.header} }
