package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// ErrorKind classifies an InputError.
type ErrorKind int

const (
	// KindSyntax: the body is not well-formed UTF-8 JSON.
	KindSyntax ErrorKind = iota + 1
	// KindEnvelope: well-formed JSON that is not an object, matches no
	// known envelope, or is not the envelope the route expects.
	KindEnvelope
	// KindField: an envelope field is missing, of the wrong JSON type or
	// malformed.
	KindField
	// KindTooLarge: a batch has more items than the route accepts (answer
	// 413, not 400: the body is well-formed but too big).
	KindTooLarge
)

// String names the kind, for logs and metric labels.
func (k ErrorKind) String() string {
	switch k {
	case KindSyntax:
		return "syntax"
	case KindEnvelope:
		return "envelope"
	case KindField:
		return "field"
	case KindTooLarge:
		return "too_large"
	}
	return "unknown"
}

// InputError reports a body the gateway refuses: the HTTP answer is 400 with
// Error() as the message, which is written for the provider's developer and
// never quotes more than a few characters of the body.
type InputError struct {
	// Kind says what went wrong.
	Kind ErrorKind
	// Provider is the envelope the body was read as; empty when it is not
	// known (syntax errors, no envelope matched).
	Provider string
	// Field is the JSON path of the field at fault ("event_id", "data[2]",
	// "webhook_data"); empty unless Kind is KindField.
	Field string
	// Offset is the zero-based byte offset in the body where the problem
	// is: the offending character of a syntax error, or the start of the
	// faulty value. -1 when there is no such place (a missing field).
	Offset int64
	// Line and Column locate Offset for humans: both 1-based, Column
	// counts characters. Zero when Offset is -1.
	Line, Column int
	// Reason says what is wrong, written to follow "<field>: " when Field
	// is set.
	Reason string
}

// Error returns "invalid JSON at byte offset N (line L, column C): reason"
// for syntax errors, "field: reason" for field errors, else the reason.
func (e *InputError) Error() string {
	switch {
	case e.Kind == KindSyntax && e.Offset >= 0:
		return fmt.Sprintf("invalid JSON at byte offset %d (line %d, column %d): %s", e.Offset, e.Line, e.Column, e.Reason)
	case e.Field != "":
		return e.Field + ": " + e.Reason
	}
	return e.Reason
}

// ErrUnknownProvider is returned (wrapped, and not as an *InputError) when
// Options.Provider names no provider: that is a configuration mistake, not
// a bad request.
var ErrUnknownProvider = errors.New("normalize: unknown provider")

func fieldErr(provider, field string, body []byte, off int, format string, args ...any) *InputError {
	e := &InputError{Kind: KindField, Provider: provider, Field: field, Offset: -1, Reason: fmt.Sprintf(format, args...)}
	if off >= 0 {
		e.locate(body, off)
	}
	return e
}

func envelopeErr(provider string, body []byte, off int, reason string) *InputError {
	e := &InputError{Kind: KindEnvelope, Provider: provider, Offset: -1, Reason: reason}
	if off >= 0 {
		e.locate(body, off)
	}
	return e
}

// locate fills Offset, Line and Column for byte offset off of body.
func (e *InputError) locate(body []byte, off int) {
	off = min(max(off, 0), len(body))
	e.Offset = int64(off)
	e.Line, e.Column = 1, 1
	for i := 0; i < off; {
		if body[i] == '\n' {
			e.Line++
			e.Column = 1
			i++
			continue
		}
		_, n := utf8.DecodeRune(body[i:off])
		i += n
		e.Column++
	}
}

// syntaxError explains why body is not valid JSON. It runs only on the
// error path, so it can afford to decode again to learn where.
func syntaxError(body []byte) *InputError {
	e := &InputError{Kind: KindSyntax}
	if len(jsonscan.TrimWS(body)) == 0 {
		e.locate(body, len(body))
		if len(body) == 0 {
			e.Reason = "empty body; expected a JSON object"
		} else {
			e.Reason = "body is only whitespace; expected a JSON object"
		}
		return e
	}
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		// json.Valid and json.Unmarshal share one scanner, so this is not
		// expected; still, say something true rather than panic.
		e.locate(body, 0)
		e.Reason = "malformed JSON"
		return e
	}
	msg := se.Error()
	if msg == "unexpected end of JSON input" {
		e.locate(body, len(body))
		e.Reason = "unexpected end of input: " + unclosed(body)
		return e
	}
	// For every other message Offset counts the offending byte itself.
	off := int(se.Offset) - 1
	if off < 0 || off >= len(body) {
		e.locate(body, len(body))
		e.Reason = msg
		return e
	}
	e.locate(body, off)
	r, _ := utf8.DecodeRune(body[off:])
	what := "unexpected " + describeAt(body[off:])
	var why string
	switch {
	case strings.HasSuffix(msg, "looking for beginning of value"):
		why = "expected a JSON value"
	case strings.HasSuffix(msg, "looking for beginning of object key string"):
		why = "expected a quoted member name"
		if r == '}' {
			why += " (trailing comma before '}'?)"
		}
	case strings.HasSuffix(msg, "after object key"):
		why = "expected ':' after the member name"
	case strings.HasSuffix(msg, "after object key:value pair"):
		why = "expected ',' or '}' after an object member"
		if r == '"' {
			why += " (missing comma?)"
		}
	case strings.HasSuffix(msg, "after array element"):
		why = "expected ',' or ']' after an array element"
		if r == '"' || r == '{' || r == '[' {
			why += " (missing comma?)"
		}
	case strings.HasSuffix(msg, "after top-level value"):
		why = "extra data after the JSON value"
	case strings.HasSuffix(msg, "in string literal"):
		why = "control characters must be escaped inside a string"
		if q := curlyQuoteBefore(body, off); q != "" {
			why += " (the string was not closed: " + q + " is not a JSON quote)"
		}
	case strings.HasSuffix(msg, "in string escape code"):
		why = "invalid escape sequence in a string"
	case strings.Contains(msg, "hexadecimal character escape"):
		why = `\u must be followed by four hex digits`
	case strings.Contains(msg, "numeric literal"):
		why = "malformed number"
	case strings.Contains(msg, "in literal"):
		why = "expected true, false or null"
	default:
		why = msg
	}
	switch r {
	case '“', '”', '‘', '’', '„', '«', '»':
		why += "; JSON strings need straight double quotes (\")"
	case '\ufeff':
		why += "; remove the byte order mark"
	case '/':
		why += "; JSON has no comments"
	case '\'':
		why += "; JSON strings need double quotes (\")"
	}
	e.Reason = what + ": " + why
	return e
}

// describeAt renders the character at the start of b so that it survives
// being read in a log: printable ones quoted, others as a code point.
func describeAt(b []byte) string {
	r, n := utf8.DecodeRune(b)
	switch {
	case r == utf8.RuneError && n <= 1:
		return fmt.Sprintf("byte 0x%02X (not UTF-8)", b[0])
	case r == '\n':
		return "newline"
	case r == '\t':
		return "tab"
	case r == '\r':
		return "carriage return"
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf("control character U+%04X", r)
	case r < 0x80:
		return fmt.Sprintf("'%c'", r)
	case r == '\ufeff':
		return "byte order mark U+FEFF"
	}
	return fmt.Sprintf("'%c' (U+%04X)", r, r)
}

// curlyQuoteBefore finds a typographic quote earlier on the line of off, the
// usual reason a string runs on to the end of its line.
func curlyQuoteBefore(body []byte, off int) string {
	start := off
	for start > 0 && body[start-1] != '\n' {
		start--
	}
	line := string(body[start:off])
	for _, q := range []string{"”", "“", "’", "‘"} {
		if strings.Contains(line, q) {
			return "'" + q + "'"
		}
	}
	return ""
}

// unclosed says what was still open when the input ended.
func unclosed(body []byte) string {
	var stack []byte
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	switch {
	case inString:
		return "a string is not closed"
	case len(stack) > 0 && stack[len(stack)-1] == '{':
		return "an object is not closed"
	case len(stack) > 0:
		return "an array is not closed"
	}
	return "the value is cut short"
}
