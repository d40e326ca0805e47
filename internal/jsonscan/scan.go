// Package jsonscan is the gateway's JSON machinery. Valid and
// FirstInvalidUTF8 check a body once, in full; everything else walks JSON
// already known to be well-formed, tracking only strings and nesting, which
// finds the handful of members the gateway needs without decoding (or
// allocating) the rest; Canonical writes the canonical form that content
// keys hash.
package jsonscan

import (
	"bytes"
	"encoding/json"
)

// IsWS reports whether c is JSON insignificant whitespace.
func IsWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipWS returns the index of the first non-whitespace byte at or after i.
func SkipWS(b []byte, i int) int {
	for i < len(b) && IsWS(b[i]) {
		i++
	}
	return i
}

// TrimWS trims JSON whitespace from both ends of b.
func TrimWS(b []byte) []byte {
	i := SkipWS(b, 0)
	j := len(b)
	for j > i && IsWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

// SkipValue returns the index just after the value starting at b[i].
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// SkipString returns the index just after the string starting at b[i].
func SkipString(b []byte, i int) int {
	i++
	// Most strings in these payloads are short: a plain loop beats the
	// call into IndexByte until a string proves long.
	for end := min(i+16, len(b)); i < end; i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			goto slow
		}
	}
slow:
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		// A quote is escaped when an odd number of backslashes precede it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// EachItem calls fn with each item of the array b (which starts with '[')
// and its offset within b, until fn returns false.
func EachItem(b []byte, fn func(item []byte, off int) bool) {
	i := SkipWS(b, 1)
	for i < len(b) && b[i] != ']' {
		end := SkipValue(b, i)
		if !fn(b[i:end], i) {
			return
		}
		i = SkipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = SkipWS(b, i+1)
		}
	}
}

// ObjIter walks the members of one object.
type ObjIter struct {
	b []byte
	i int
}

// NewObjIter walks the object b, which must start with '{'.
func NewObjIter(b []byte) ObjIter { return ObjIter{b: b, i: 1} }

// Next returns the next member: its raw key (with quotes), the raw value
// and the value's offset within b. ok is false after the last one.
func (it *ObjIter) Next() (key, val []byte, valOff int, ok bool) {
	b := it.b
	i := SkipWS(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = SkipWS(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, 0, false
	}
	kEnd := SkipString(b, i)
	key = b[i:kEnd]
	i = SkipWS(b, kEnd)
	i = SkipWS(b, i+1) // the ':'
	vEnd := SkipValue(b, i)
	it.i = vEnd
	return key, b[i:vEnd], i, true
}

// KeyIs compares a raw key (with quotes) with name without decoding it in
// the common case of a key with no escapes.
func KeyIs(rawKey []byte, name string) bool {
	inner := rawKey[1 : len(rawKey)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	s, ok := DecodeString(rawKey)
	return ok && s == name
}

// DecodeString decodes a raw JSON string (with quotes); ok is false when v
// is not a string.
func DecodeString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// Member finds the first member called name of the object at the start of
// v and returns v from that member's value on, or nil: the value's end is left for
// the caller to find, so descending into a large object does not walk it
// twice. Stopping at the first match (encoding/json keeps the last of
// duplicates) also spares the rest of the payload: fit for a member that
// never decides whether a body is accepted, like an event's subject.
func Member(v []byte, name string) []byte {
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	i := SkipWS(v, 1)
	for i < len(v) && v[i] == '"' {
		kEnd := SkipString(v, i)
		match := KeyIs(v[i:kEnd], name)
		i = SkipWS(v, SkipWS(v, kEnd)+1) // past the ':'
		if match {
			return v[i:]
		}
		i = SkipWS(v, SkipValue(v, i))
		if i < len(v) && v[i] == ',' {
			i = SkipWS(v, i+1)
		}
	}
	return nil
}

// Kind names the JSON type of a value by its first byte: "object",
// "array", "string", "boolean", "null" or "number" ("nothing" for none).
func Kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
