package verify

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The signed content and the signature header formats of HMAC.

// part is one piece of the signed content.
type part struct {
	kind partKind
	// lit is the literal text of a partLiteral; name is the canonical
	// header of a partHeader.
	lit  []byte
	name string
}

type partKind uint8

const (
	partLiteral partKind = iota
	partBody
	partTimestamp
	partHeader
)

// parseSignedContent reads a signed-content template. An unknown
// placeholder is an error rather than literal text, so a typo cannot make
// every request fail with a mismatch that looks like a wrong key.
func parseSignedContent(tmpl string) ([]part, error) {
	var (
		parts  []part
		bodies int
	)
	for rest := tmpl; rest != ""; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			parts = append(parts, part{kind: partLiteral, lit: []byte(rest)})
			break
		}
		if open > 0 {
			parts = append(parts, part{kind: partLiteral, lit: []byte(rest[:open])})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, configErr("hmac: signed content %q has an unclosed {", tmpl)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		switch {
		case name == "body":
			bodies++
			parts = append(parts, part{kind: partBody})
		case name == "timestamp":
			parts = append(parts, part{kind: partTimestamp})
		case strings.HasPrefix(name, "header.") || strings.HasPrefix(name, "http.request.header."):
			// The long form is what the Caddyfile makes of the short one.
			h := strings.TrimPrefix(strings.TrimPrefix(name, "http.request."), "header.")
			if !httpguts.ValidHeaderFieldName(h) {
				return nil, configErr("hmac: signed content %q: %q is not a valid header name", tmpl, h)
			}
			parts = append(parts, part{kind: partHeader, name: http.CanonicalHeaderKey(h)})
		default:
			return nil, configErr("hmac: signed content %q: unknown placeholder {%s} (want {body}, {timestamp} or {header.<name>})", tmpl, name)
		}
	}
	if bodies != 1 {
		return nil, configErr("hmac: signed content %q must contain {body} exactly once", tmpl)
	}
	return parts, nil
}

// plainMAC reads a plain-format header: the prefix, then one encoded MAC.
func (v *HMAC) plainMAC(raw string) ([]byte, error) {
	got := strings.TrimSpace(raw)
	if v.prefix != "" {
		if len(got) < len(v.prefix) || !strings.EqualFold(got[:len(v.prefix)], v.prefix) {
			return nil, fmt.Errorf("header %s lacks the configured prefix: %w", v.header, ErrMalformed)
		}
		got = got[len(v.prefix):]
	}
	mac, err := v.decode(got)
	if err != nil {
		// The decoder's error quotes the offending byte and its offset;
		// both come from the credential, so neither is repeated.
		return nil, fmt.Errorf("header %s is not valid %s: %w", v.header, v.encoding, ErrMalformed)
	}
	if len(mac) != v.size {
		// A MAC's length is public (it follows from the hash), so this
		// early answer reveals nothing about the keys.
		return nil, fmt.Errorf("header %s has %d bytes, want %d: %w", v.header, len(mac), v.size, ErrMalformed)
	}
	return mac, nil
}

// stripeMACs reads "t=<unix>,v1=<mac>[,v1=<mac>...]". Entries other than t
// and v1 (Stripe's test-mode v0, future schemes) are skipped, and so is a
// v1 entry that does not decode to a MAC of the configured hash, as
// Stripe's own libraries do; at least one readable v1 must remain.
func (v *HMAC) stripeMACs(raw string, macs [][]byte) (string, [][]byte, error) {
	var ts string
	seenT := false
	for item := range strings.SplitSeq(raw, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return "", nil, fmt.Errorf("header %s has an entry without '=': %w", v.header, ErrMalformed)
		}
		switch key {
		case "t":
			if seenT {
				return "", nil, fmt.Errorf("header %s has t= twice: %w", v.header, ErrMalformed)
			}
			ts, seenT = val, true
		case "v1":
			var err error
			if macs, err = v.appendMAC(macs, val); err != nil {
				return "", nil, err
			}
		}
	}
	if !seenT {
		return "", nil, fmt.Errorf("header %s has no t= timestamp: %w", v.header, ErrMalformed)
	}
	if len(macs) == 0 {
		return "", nil, fmt.Errorf("header %s has no readable v1= signature: %w", v.header, ErrMalformed)
	}
	return ts, macs, nil
}

// versionedMACs reads the Standard Webhooks list "v1,<base64> v1,<base64>".
// Entries of another version (v1a is asymmetric) are skipped, and so is a
// v1 entry that does not decode to a MAC of the configured hash; at least
// one readable v1 must remain.
func (v *HMAC) versionedMACs(raw string, macs [][]byte) ([][]byte, error) {
	for _, item := range strings.Fields(raw) {
		version, sig, ok := strings.Cut(item, ",")
		if !ok {
			return nil, fmt.Errorf("header %s has an entry without a version: %w", v.header, ErrMalformed)
		}
		if version == "v1" {
			var err error
			if macs, err = v.appendMAC(macs, sig); err != nil {
				return nil, err
			}
		}
	}
	if len(macs) == 0 {
		return nil, fmt.Errorf("header %s has no readable v1 signature: %w", v.header, ErrMalformed)
	}
	return macs, nil
}

// appendMAC adds one encoded signature of a list to macs, skipping one
// that cannot be a MAC of the configured hash.
func (v *HMAC) appendMAC(macs [][]byte, encoded string) ([][]byte, error) {
	mac, err := v.decode(encoded)
	if err != nil || len(mac) != v.size {
		return macs, nil
	}
	if len(macs) == maxSignatures {
		return nil, fmt.Errorf("header %s has more than %d signatures: %w", v.header, maxSignatures, ErrMalformed)
	}
	return append(macs, mac), nil
}

// parseUnix reads Unix seconds: decimal digits only, no sign, no fraction.
func parseUnix(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty: %w", ErrMissing)
	}
	if len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("not Unix seconds: %w", ErrMalformed)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("not Unix seconds: %w", ErrMalformed)
	}
	return time.Unix(n, 0), nil
}

// checkAge refuses a signed time further than the tolerance from now.
func (v *HMAC) checkAge(signedAt time.Time, from string) error {
	age := v.now().Sub(signedAt)
	switch {
	case age > v.tolerance:
		return fmt.Errorf("header %s: signed %s ago, tolerance %s: %w", from, age.Truncate(time.Second), v.tolerance, ErrStale)
	case -age > v.tolerance:
		return fmt.Errorf("header %s: signed %s in the future, tolerance %s: %w", from, (-age).Truncate(time.Second), v.tolerance, ErrStale)
	}
	return nil
}

// checkAlgorithm refuses a request whose algorithm header names another
// hash than the configured one. "HMAC-SHA256", "hmac_sha256", "sha-256"
// and "SHA256" all name sha256.
func (v *HMAC) checkAlgorithm(r *http.Request) error {
	values := r.Header.Values(v.algHeader)
	switch len(values) {
	case 0:
		return nil
	case 1:
	default:
		return fmt.Errorf("header %s repeated %d times: %w", v.algHeader, len(values), ErrMalformed)
	}
	name := strings.ToLower(strings.TrimSpace(values[0]))
	name = strings.TrimPrefix(name, "hmac")
	name = strings.NewReplacer("-", "", "_", "", " ", "").Replace(name)
	if name != v.hashName {
		return fmt.Errorf("header %s names %q, the route verifies hmac-%s: %w", v.algHeader, truncate(values[0], 32), v.hashName, ErrMismatch)
	}
	return nil
}

// truncate bounds a client-sent value quoted in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
