// Package jsonscan walks JSON that is already known to be well-formed (a
// validator or decoder has seen it), tracking only strings and nesting. It
// finds a handful of fields without decoding, or allocating, the rest.
package jsonscan

import "bytes"

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
