package normalize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// fixture is one sample body from testdata.
type fixture struct {
	path     string // relative to testdata
	provider string
	// eventType is the file's base name for the one-per-type fixtures.
	eventType string
	body      []byte
}

// fixtures loads testdata/<provider>/<type>.json and the extra bodies in
// testdata/<provider>/*/ (batches, other spellings of an envelope).
func fixtures(tb testing.TB) []fixture {
	tb.Helper()
	var out []fixture
	for _, pattern := range []string{"testdata/*/*.json", "testdata/*/*/*.json"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range paths {
			body, err := os.ReadFile(p)
			if err != nil {
				tb.Fatal(err)
			}
			rel, _ := filepath.Rel("testdata", p)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			f := fixture{path: rel, provider: parts[0], body: body}
			if len(parts) == 2 {
				f.eventType = strings.TrimSuffix(parts[1], ".json")
			}
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		tb.Fatal("no fixtures found")
	}
	return out
}

func readFixture(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(rel)))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var jsonSchema = sync.OnceValues(func() (func([]byte) error, error) { return schemas.NewJSONSchemaValidator() })

// checkEvent asserts ev passes both published schemas: the validator tags
// and, once marshalled as it is delivered, the JSON Schema; and that its
// provider is a registered one (the schemas fix only the name's form).
func checkEvent(tb testing.TB, ev schemas.Event) {
	tb.Helper()
	if lookup(ev.Provider) == nil {
		tb.Errorf("event provider %q is not registered", ev.Provider)
	}
	if err := schemas.Validate(&ev); err != nil {
		tb.Errorf("event fails schemas.Validate: %v\n%+v", err, ev)
	}
	doc, err := json.Marshal(ev)
	if err != nil {
		tb.Errorf("marshal event: %v", err)
		return
	}
	validate, err := jsonSchema()
	if err != nil {
		tb.Fatal(err)
	}
	if err := validate(doc); err != nil {
		tb.Errorf("event fails the JSON Schema: %v\n%s", err, doc)
	}
}

// decode reads JSON into generic values, keeping numbers as written.
func decode(tb testing.TB, b []byte) any {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// path walks generic JSON: each step is an object member name.
func path(v any, names ...string) any {
	for _, n := range names {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[n]
	}
	return v
}

// compact is the comparison form of a JSON document.
func compact(tb testing.TB, b []byte) string {
	tb.Helper()
	out, err := json.Marshal(decode(tb, b))
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

func timeZone(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Skip("no tzdata:", err)
	}
	return loc
}
