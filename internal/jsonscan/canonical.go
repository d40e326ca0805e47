package jsonscan

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// Canonical writes the canonical form of a JSON value: no insignificant
// whitespace, object members sorted by the bytes of their decoded UTF-8
// names (the last of duplicate names wins, as in encoding/json), strings
// with only '"', '\\' and control characters escaped (\b \f \n \r \t, else
// \u00XX in lowercase hex), numbers exactly as written.
//
// It parses in one pass: each object's members are written in document
// order, then moved into sorted order with a copy, which is far cheaper
// than walking nested values once per level.
//
// The zero value is ready to use; it keeps its scratch space between
// calls, and is not safe for concurrent use.
type Canonical struct {
	out     []byte
	tmp     []byte
	members []objMember
}

type objMember struct {
	name       []byte // decoded
	start, end int    // canonical value, relative to the object's start in out
}

// Append appends the canonical form of v, one valid JSON value without
// surrounding whitespace, to dst and returns the extended buffer.
func (c *Canonical) Append(dst, v []byte) []byte {
	c.out = dst
	c.value(v, 0)
	dst, c.out = c.out, nil
	return dst
}

// value writes the value at b[i] (valid JSON) and returns the index after it.
func (c *Canonical) value(b []byte, i int) int {
	switch b[i] {
	case '{':
		return c.object(b, i)
	case '[':
		c.out = append(c.out, '[')
		i = SkipWS(b, i+1)
		for first := true; b[i] != ']'; first = false {
			if !first {
				c.out = append(c.out, ',')
			}
			i = SkipWS(b, c.value(b, i))
			if b[i] == ',' {
				i = SkipWS(b, i+1)
			}
		}
		c.out = append(c.out, ']')
		return i + 1
	case '"':
		end := SkipString(b, i)
		c.str(b[i:end])
		return end
	}
	end := SkipValue(b, i)
	c.out = append(c.out, b[i:end]...)
	return end
}

func (c *Canonical) object(b []byte, i int) int {
	start := len(c.out)
	first := len(c.members)
	i = SkipWS(b, i+1)
	for b[i] != '}' {
		kEnd := SkipString(b, i)
		name := b[i+1 : kEnd-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			s, _ := DecodeString(b[i:kEnd])
			name = []byte(s)
		}
		i = SkipWS(b, SkipWS(b, kEnd)+1) // past the ':'
		vStart := len(c.out)
		i = SkipWS(b, c.value(b, i))
		c.members = append(c.members, objMember{name: name, start: vStart - start, end: len(c.out) - start})
		if b[i] == ',' {
			i = SkipWS(b, i+1)
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

func (c *Canonical) str(raw []byte) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		// Valid JSON without escapes has no control characters, so the
		// raw form is already canonical.
		c.out = append(c.out, raw...)
		return
	}
	s, _ := DecodeString(raw)
	c.strBytes([]byte(s))
}

const hexDigits = "0123456789abcdef"

func (c *Canonical) strBytes(s []byte) {
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
