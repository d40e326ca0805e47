package schemas

import (
	"bytes"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// CanonicalEventJSONSchema is the JSON Schema (draft 2020-12) of the
// canonical event, as published in canonical-event.schema.json.
//
//go:embed canonical-event.schema.json
var CanonicalEventJSONSchema []byte

// CanonicalEventSchemaID is the $id of CanonicalEventJSONSchema.
const CanonicalEventSchemaID = "https://github.com/webhookgw/caddy-webhook-gateway/schemas/canonical-event.schema.json"

// compiled is built once: compiling walks the draft 2020-12 metaschema and
// costs far more than any single validation.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(CanonicalEventJSONSchema))
	if err != nil {
		return nil, fmt.Errorf("schemas: reading the canonical event schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	// "format" is only an annotation in draft 2020-12 unless asserted; the
	// times and the source must really be checked.
	c.AssertFormat()
	if err := c.AddResource(CanonicalEventSchemaID, doc); err != nil {
		return nil, fmt.Errorf("schemas: loading the canonical event schema: %w", err)
	}
	sch, err := c.Compile(CanonicalEventSchemaID)
	if err != nil {
		return nil, fmt.Errorf("schemas: compiling the canonical event schema: %w", err)
	}
	return sch, nil
})

// NewJSONSchemaValidator returns a function that checks one JSON document
// (a delivered event body) against CanonicalEventJSONSchema. The schema
// fixes the provider attribute's form only; when providers are given (the
// gateway's are normalize.Providers()), the attribute must also be one of
// them. The schema is compiled once per process; the returned function is
// safe for concurrent use. An error from the function describes every
// violation found.
func NewJSONSchemaValidator(providers ...string) (func(doc []byte) error, error) {
	sch, err := compiled()
	if err != nil {
		return nil, err
	}
	providers = slices.Clone(providers)
	return func(doc []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
		if err != nil {
			return fmt.Errorf("not a JSON document: %w", err)
		}
		if err := sch.Validate(v); err != nil {
			return err
		}
		if len(providers) == 0 {
			return nil
		}
		// The schema has checked that an object with a string provider
		// attribute is there.
		if p := v.(map[string]any)["provider"].(string); !slices.Contains(providers, p) {
			return fmt.Errorf("provider %q is not one of %s", p, strings.Join(providers, ", "))
		}
		return nil
	}, nil
}
