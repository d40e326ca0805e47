package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// validate is shared: a validator.Validate caches struct metadata and is
// safe for concurrent use, so building one per call would only waste work.
var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Report JSON names, which are what a provider or a backend sees.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		if name == "" {
			return f.Name
		}
		return name
	})
	custom := map[string]validator.Func{
		"visibleascii":  func(fl validator.FieldLevel) bool { return IsVisibleASCII(fl.Field().String()) },
		"provider":      func(fl validator.FieldLevel) bool { return ValidAttributeName(fl.Field().String()) },
		"token":         func(fl validator.FieldLevel) bool { return IsToken(fl.Field().String()) },
		"uri_reference": func(fl validator.FieldLevel) bool { return IsURIReference(fl.Field().String()) },
		"hex64":         func(fl validator.FieldLevel) bool { return isHex64(fl.Field().String()) },
		"traceparent":   func(fl validator.FieldLevel) bool { return IsTraceParent(fl.Field().String()) },
		"rfc3339": func(fl validator.FieldLevel) bool {
			_, err := ParseRFC3339(fl.Field().String())
			return err == nil
		},
		"providertime": func(fl validator.FieldLevel) bool {
			_, _, err := ParseProviderTime(fl.Field().String(), time.UTC)
			return err == nil
		},
		"utc": func(fl validator.FieldLevel) bool {
			t, ok := fl.Field().Interface().(time.Time)
			return ok && !t.IsZero() && t.Location() == time.UTC && InTimeRange(t)
		},
		"jsondoc":       func(fl validator.FieldLevel) bool { return isJSONDoc(fl.Field().Bytes()) },
		"jsoncontainer": func(fl validator.FieldLevel) bool { return firstByteIn(fl.Field().Bytes(), "{[") },
		"objects":       func(fl validator.FieldLevel) bool { return isObjects(fl.Field().Bytes()) },
	}
	for tag, fn := range custom {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(err) // only a malformed tag name can get here
		}
	}
	return v
}

// Validate checks v against its validator tags. v is one of this package's
// types, a pointer to one, or a slice of them. The error, when not nil, is a
// *ValidationError naming the JSON fields at fault.
func Validate(v any) error {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return errors.New("schemas: cannot validate a nil pointer")
		}
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		for i := range rv.Len() {
			if err := Validate(rv.Index(i).Addr().Interface()); err != nil {
				var ve *ValidationError
				if errors.As(err, &ve) {
					for j := range ve.Problems {
						ve.Problems[j].Field = fmt.Sprintf("[%d].%s", i, ve.Problems[j].Field)
					}
				}
				return err
			}
		}
		return nil
	}
	if rv.Kind() != reflect.Struct {
		return fmt.Errorf("schemas: cannot validate a %s", rv.Kind())
	}
	if !rv.CanAddr() {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		rv = p.Elem()
	}
	err := validate.Struct(rv.Addr().Interface())
	if err == nil {
		return nil
	}
	var errs validator.ValidationErrors
	if !errors.As(err, &errs) {
		return err
	}
	ve := &ValidationError{Problems: make([]FieldProblem, 0, len(errs))}
	for _, fe := range errs {
		ve.Problems = append(ve.Problems, FieldProblem{Field: jsonPath(fe.Namespace()), Reason: reason(fe)})
	}
	return ve
}

// ValidationError lists the fields of a value that break its schema.
type ValidationError struct {
	// Problems is in field order and never empty.
	Problems []FieldProblem
}

// Error joins the problems as "field: reason; field: reason".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// FieldProblem is one failed constraint, in the terms of the JSON document.
type FieldProblem struct {
	// Field is the JSON path of the field, e.g. "event_id".
	Field string
	// Reason completes "<field>: ", e.g. "must be 64 hex characters".
	Reason string
}

// String returns "field: reason".
func (p FieldProblem) String() string { return p.Field + ": " + p.Reason }

// jsonPath drops the struct name that the validator puts first.
func jsonPath(ns string) string {
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return ns
}

// reason renders a failed tag as the end of a "<field>: " sentence. The
// value is quoted only for format rules, where seeing it is what helps.
func reason(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "must not be empty"
	case "eq":
		return fmt.Sprintf("must be %q", fe.Param())
	case "oneof":
		return "must be one of " + strings.Join(strings.Fields(fe.Param()), ", ")
	case "max":
		return "must be at most " + fe.Param() + " characters"
	case "provider":
		return "must be a provider name: 1 to 20 lowercase letters and digits"
	case "visibleascii":
		return "must contain only visible ASCII characters (no spaces or control characters)"
	case "token":
		return "must not contain spaces or control characters"
	case "uri_reference":
		return "must be a URI reference"
	case "hex64":
		return "must be 64 hex characters"
	case "traceparent":
		return "must be a W3C traceparent: 2, 32, 16 and 2 lowercase hex digits joined by \"-\""
	case "rfc3339":
		if s, ok := fe.Value().(string); ok && parses(time.RFC3339, s) {
			return errTimeRange.Error()
		}
		return "must be an RFC 3339 date-time with offset, like \"2020-09-24T14:09:13+02:00\"" + got(fe)
	case "providertime":
		if s, ok := fe.Value().(string); ok && parses(ProviderTimeLayout, s) {
			return errTimeRange.Error()
		}
		return "must be \"YYYY-MM-DD hh:mm:ss\" (or \"" + ZeroProviderTime + "\" for none)" + got(fe)
	case "utc":
		return "must be a non-zero UTC time between years 0001 and 9999"
	case "jsondoc":
		return "must be a JSON object or array"
	case "jsoncontainer":
		return "must be a JSON object or array"
	case "objects":
		return "must be a JSON object or a non-empty array of objects"
	}
	return "fails the " + fe.Tag() + " rule"
}

// parses tells a well-formed time that is out of range from a malformed
// one, which deserve different messages.
func parses(layout, s string) bool {
	_, err := time.Parse(layout, s)
	return err == nil
}

// got quotes a string value, shortened so a hostile body cannot make the
// error message arbitrarily long.
func got(fe validator.FieldError) string {
	s, ok := fe.Value().(string)
	if !ok {
		return ""
	}
	const limit = 40
	if utf8.RuneCountInString(s) > limit {
		s = string([]rune(s)[:limit]) + "..."
	}
	return fmt.Sprintf(", got %q", s)
}

// ValidAttributeName reports whether name may be a CloudEvents attribute
// name: lowercase ASCII letters and digits, 1 to 20 characters.
func ValidAttributeName(name string) bool {
	if len(name) == 0 || len(name) > 20 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// IsToken reports whether s is usable as an event type or a subject: valid
// UTF-8 without ASCII spaces or control characters. Provider names never
// contain them, and a value without them is safe in logs and metric labels.
func IsToken(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// IsURIReference reports whether s is a non-empty URI reference (RFC 3986)
// as Go's net/url reads it, with no backslash, space or control character:
// the rule the JSON Schema's "uri-reference" format and pattern express.
func IsURIReference(s string) bool {
	if s == "" || !IsToken(s) || strings.ContainsRune(s, '\\') {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	// net/url does not check that an IPv6 host is bracketed; the JSON
	// Schema validator does, so both must agree.
	if h := u.Hostname(); strings.Contains(h, ":") && !strings.Contains(u.Host, "[") {
		return false
	}
	return true
}

func IsVisibleASCII(s string) bool {
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// IsTraceParent reports whether s has the form of a W3C traceparent
// (version 00): "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>", in
// lowercase hex, the ids not all zero.
func IsTraceParent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for _, part := range []string{s[:2], s[3:35], s[36:52], s[53:]} {
		for i := range len(part) {
			if c := part[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return strings.Trim(s[3:35], "0") != "" && strings.Trim(s[36:52], "0") != ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// firstByteIn checks the kind of a JSON value by its first byte. It does not
// rescan the value: a json.RawMessage filled by a decoder is well-formed.
func firstByteIn(b []byte, set string) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return strings.IndexByte(set, c) >= 0
	}
	return false
}

func isJSONDoc(b []byte) bool {
	return firstByteIn(b, "{[") && json.Valid(b)
}

// isObjects accepts an object, or a non-empty array whose items are all
// objects (a batch). Items are found by a light scan that relies on b being
// well-formed, as a decoder guarantees.
func isObjects(b []byte) bool {
	b = jsonscan.TrimWS(b)
	if len(b) == 0 {
		return false
	}
	if b[0] == '{' {
		return true
	}
	if b[0] != '[' {
		return false
	}
	items := 0
	ok := true
	jsonscan.EachItem(b, func(item []byte, _ int) bool {
		items++
		ok = len(item) > 0 && item[0] == '{'
		return ok
	})
	return ok && items > 0
}
