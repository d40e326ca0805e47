package normalize

import (
	"errors"
	"testing"
	"time"
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
