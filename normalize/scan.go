package normalize

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// The body is checked once with json.Valid and utf8.Valid; everything below
// walks that already-valid JSON by hand, which finds the handful of fields
// the normalizer needs without decoding (or allocating) the rest.

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func trimWS(b []byte) []byte {
	i := skipWS(b, 0)
	j := len(b)
	for j > i && isWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

// skipValue returns the index just after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
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

// skipString returns the index just after the string starting at b[i].
func skipString(b []byte, i int) int {
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

// objIter walks the members of one object. b must start with '{'.
type objIter struct {
	b []byte
	i int
}

func newObjIter(b []byte) objIter { return objIter{b: b, i: 1} }

// next returns the next member: its raw key (with quotes), the raw value
// and the value's offset within b.
func (it *objIter) next() (key, val []byte, valOff int, ok bool) {
	b := it.b
	i := skipWS(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipWS(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, 0, false
	}
	kEnd := skipString(b, i)
	key = b[i:kEnd]
	i = skipWS(b, kEnd)
	i = skipWS(b, i+1) // the ':'
	vEnd := skipValue(b, i)
	it.i = vEnd
	return key, b[i:vEnd], i, true
}

// keyIs compares a raw key (with quotes) with name without decoding it in
// the common case of a key with no escapes.
func keyIs(rawKey []byte, name string) bool {
	inner := rawKey[1 : len(rawKey)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	s, ok := decodeString(rawKey)
	return ok && s == name
}

// decodeString decodes a raw JSON string (with quotes); ok is false when v
// is not a string.
func decodeString(v []byte) (string, bool) {
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

// eachItem calls fn with each item of the array b (which starts with '[')
// and its offset within b, until fn returns false.
func eachItem(b []byte, fn func(item []byte, off int) bool) {
	i := skipWS(b, 1)
	for i < len(b) && b[i] != ']' {
		end := skipValue(b, i)
		if !fn(b[i:end], i) {
			return
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
}

// canonical writes the canonical form of a JSON value: no insignificant
// whitespace, object members sorted by the bytes of their decoded UTF-8
// names (the last of duplicate names wins, as in encoding/json), strings
// with only '"', '\\' and control characters escaped (\b \f \n \r \t, else
// \u00XX in lowercase hex), numbers exactly as written.
//
// It parses in one pass: each object's members are written in document
// order, then moved into sorted order with a copy, which is far cheaper
// than walking nested values once per level.
type canonical struct {
	out     []byte
	tmp     []byte
	members []objMember
}

type objMember struct {
	name       []byte // decoded
	start, end int    // canonical value, relative to the object's start in out
}

// value writes the value at b[i] (valid JSON) and returns the index after it.
func (c *canonical) value(b []byte, i int) int {
	switch b[i] {
	case '{':
		return c.object(b, i)
	case '[':
		c.out = append(c.out, '[')
		i = skipWS(b, i+1)
		for first := true; b[i] != ']'; first = false {
			if !first {
				c.out = append(c.out, ',')
			}
			i = skipWS(b, c.value(b, i))
			if b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		c.out = append(c.out, ']')
		return i + 1
	case '"':
		end := skipString(b, i)
		c.str(b[i:end])
		return end
	}
	end := skipValue(b, i)
	c.out = append(c.out, b[i:end]...)
	return end
}

func (c *canonical) object(b []byte, i int) int {
	start := len(c.out)
	first := len(c.members)
	i = skipWS(b, i+1)
	for b[i] != '}' {
		kEnd := skipString(b, i)
		name := b[i+1 : kEnd-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			s, _ := decodeString(b[i:kEnd])
			name = []byte(s)
		}
		i = skipWS(b, skipWS(b, kEnd)+1) // past the ':'
		vStart := len(c.out)
		i = skipWS(b, c.value(b, i))
		c.members = append(c.members, objMember{name: name, start: vStart - start, end: len(c.out) - start})
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	ms := c.members[first:]
	// Stable, so duplicates stay in document order and the last one wins.
	slices.SortStableFunc(ms, func(a, b objMember) int { return bytes.Compare(a.name, b.name) })
	c.tmp = append(c.tmp[:0], c.out[start:]...)
	c.out = append(c.out[:start], '{')
	sep := false
	for k := range ms {
		if k+1 < len(ms) && bytes.Equal(ms[k].name, ms[k+1].name) {
			continue // a later duplicate wins
		}
		if sep {
			c.out = append(c.out, ',')
		}
		sep = true
		c.strBytes(ms[k].name)
		c.out = append(c.out, ':')
		c.out = append(c.out, c.tmp[ms[k].start:ms[k].end]...)
	}
	c.out = append(c.out, '}')
	c.members = c.members[:first]
	return i + 1
}

func (c *canonical) str(raw []byte) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		// Valid JSON without escapes has no control characters, so the
		// raw form is already canonical.
		c.out = append(c.out, raw...)
		return
	}
	s, _ := decodeString(raw)
	c.strBytes([]byte(s))
}

const hexDigits = "0123456789abcdef"

func (c *canonical) strBytes(s []byte) {
	c.out = append(c.out, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			_, n := utf8.DecodeRune(s[i:])
			c.out = append(c.out, s[i:i+n]...)
			i += n
			continue
		}
		switch {
		case b == '"' || b == '\\':
			c.out = append(c.out, '\\', b)
		case b == '\b':
			c.out = append(c.out, '\\', 'b')
		case b == '\f':
			c.out = append(c.out, '\\', 'f')
		case b == '\n':
			c.out = append(c.out, '\\', 'n')
		case b == '\r':
			c.out = append(c.out, '\\', 'r')
		case b == '\t':
			c.out = append(c.out, '\\', 't')
		case b < 0x20:
			c.out = append(c.out, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
		default:
			c.out = append(c.out, b)
		}
		i++
	}
	c.out = append(c.out, '"')
}
