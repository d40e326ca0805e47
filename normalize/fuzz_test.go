package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// FuzzNormalize: any body, any provider setting. Normalize must not panic;
// an error must be an *InputError; events must pass both published
// schemas. Run with: go test -fuzz=FuzzNormalize ./normalize
func FuzzNormalize(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.body, uint8(0), false)
	}
	for i, c := range errCases(f) {
		f.Add([]byte(c.body), uint8(i), i%2 == 0)
	}
	providers := []string{Auto, OpenLoyalty, Sublytics, USAePay}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		tokyo = time.FixedZone("UTC+9", 9*3600)
	}
	f.Fuzz(func(t *testing.T, body []byte, provider uint8, zoned bool) {
		o := Options{Provider: providers[int(provider)%len(providers)], ReceivedAt: received}
		if zoned {
			o.Location = tokyo
		}
		evs, err := Normalize(body, o)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an *InputError: %v", err, err)
			}
			if ie.Error() == "" || ie.Kind == 0 {
				t.Fatalf("empty error: %+v", ie)
			}
			if ie.Offset > int64(len(body)) {
				t.Fatalf("offset %d past the body (%d bytes)", ie.Offset, len(body))
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no error and no events")
		}
		for _, ev := range evs {
			checkEvent(t, ev)
		}
		if o.Provider == Auto {
			if p, err := Detect(body); err != nil || p != evs[0].Provider {
				t.Fatalf("Detect = %q, %v; Normalize read %q", p, err, evs[0].Provider)
			}
		}
	})
}

// FuzzValidJSON holds validJSON to json.Valid's verdict on every input.
func FuzzValidJSON(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.body)
	}
	for _, c := range errCases(f) {
		f.Add([]byte(c.body))
	}
	for _, s := range []string{`[]`, `{}`, `-0.5e+7`, `"\u00e9\ud800"`, `[1,]`, `{"a"}`, `-`, `1.`, `1e`, `"\x"`, "\"\t\"", `[[[]]]`, ` true `, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

func TestValidJSONDepth(t *testing.T) {
	for _, n := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closer := map[string]string{"[": "]", `{"a":`: "}"}[open]
			b := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closer, n))
			if got, want := validJSON(b), json.Valid(b); got != want {
				t.Errorf("depth %d of %s: validJSON %v, json.Valid %v", n, open, got, want)
			}
		}
	}
}

// FuzzCanonical holds the canonical form behind DeriveID to an independent
// implementation: encoding/json's sorted-key encoding of the value decoded
// with UseNumber. The two differ only on U+2028 and U+2029, which
// encoding/json escapes, so inputs with those are skipped.
func FuzzCanonical(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.body)
	}
	for _, s := range []string{`{"b":1,"a":{"d":[1.0,2e5,-0],"c":"\u0041\n\t\u0001"},"a":true}`, `"\ud800"`, `[{},[],""]`, `{"\u00e9":1,"e":2,"é":3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) {
			return
		}
		lower := strings.ToLower(string(b))
		if strings.Contains(lower, `\u2028`) || strings.Contains(lower, `\u2029`) ||
			strings.Contains(string(b), "\u2028") || strings.Contains(string(b), "\u2029") {
			return
		}
		var c canonical
		c.value(jsonscan.TrimWS(b), 0)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if got := string(c.out); got != strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("canonical(%s)\n got %s\nwant %s", b, got, want.String())
		}
	})
}
