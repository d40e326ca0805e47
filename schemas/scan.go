package schemas

import (
	"bytes"
	"encoding/json"
)

// The helpers below walk JSON that is already known to be well-formed (a
// decoder produced it), so they only track strings and nesting.

func jsonValid(b []byte) bool { return json.Valid(b) }

func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// eachArrayItem calls fn with each item of the array b (which starts with
// '['), until fn returns false.
func eachArrayItem(b []byte, fn func(item []byte) bool) {
	i := skipWS(b, 1)
	for i < len(b) && b[i] != ']' {
		end := skipValue(b, i)
		if !fn(b[i:end]) {
			return
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
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
