package sim

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
)

// obj is a JSON object that keeps its key order, so bodies look like the
// providers' examples and a redelivery can re-encode the same document with
// another key order: a gateway that derives ids from raw bytes instead of
// canonical JSON is then caught.
type obj []kv

type kv struct {
	k string
	v any
}

// get returns the value stored under key, or nil.
func (o obj) get(key string) any {
	for _, e := range o {
		if e.k == key {
			return e.v
		}
	}
	return nil
}

// set replaces the value under key, or appends it.
func (o obj) set(key string, v any) obj {
	for i := range o {
		if o[i].k == key {
			o[i].v = v
			return o
		}
	}
	return append(o, kv{key, v})
}

// MarshalJSON keeps key order; encoding/json calls it when an obj is nested in
// other values.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, o, nil, "", ""); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encode writes v as JSON. With shuffle set, object keys come out in a random
// order; indent, when non-empty, pretty-prints. Number and string literals are
// encoded exactly as encoding/json would, so only layout and key order vary.
func encode(b *bytes.Buffer, v any, shuffle *rand.Rand, indent, prefix string) error {
	nl := func(p string) {
		if indent != "" {
			b.WriteByte('\n')
			b.WriteString(p)
		}
	}
	switch x := v.(type) {
	case obj:
		if len(x) == 0 {
			b.WriteString("{}")
			return nil
		}
		order := make([]int, len(x))
		for i := range order {
			order[i] = i
		}
		if shuffle != nil {
			shuffle.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		b.WriteByte('{')
		inner := prefix + indent
		for n, i := range order {
			if n > 0 {
				b.WriteByte(',')
			}
			nl(inner)
			k, _ := json.Marshal(x[i].k)
			b.Write(k)
			b.WriteByte(':')
			if indent != "" {
				b.WriteByte(' ')
			}
			if err := encode(b, x[i].v, shuffle, indent, inner); err != nil {
				return err
			}
		}
		nl(prefix)
		b.WriteByte('}')
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		inner := prefix + indent
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			nl(inner)
			if err := encode(b, e, shuffle, indent, inner); err != nil {
				return err
			}
		}
		nl(prefix)
		b.WriteByte(']')
	case []obj:
		arr := make([]any, len(x))
		for i := range x {
			arr[i] = x[i]
		}
		return encode(b, arr, shuffle, indent, prefix)
	default:
		raw, err := json.Marshal(x)
		if err != nil {
			return err
		}
		b.Write(raw)
	}
	return nil
}

// marshalDoc encodes a document in provider order; indent "" is compact.
func marshalDoc(v any, indent string) []byte {
	var b bytes.Buffer
	if err := encode(&b, v, nil, indent, ""); err != nil {
		// Documents are built from strings, numbers, bools, nil, obj and
		// slices only: encoding cannot fail.
		panic(err)
	}
	return b.Bytes()
}

// marshalShuffled encodes v with every object's keys in a random order and a
// random layout.
func marshalShuffled(v any, r *rand.Rand) []byte {
	var b bytes.Buffer
	indent := []string{"", "  ", "    ", "\t"}[r.IntN(4)]
	if err := encode(&b, v, r, indent, ""); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// clone deep-copies a document so a redelivery can alter its copy without
// touching the one already recorded.
func clone(v any) any {
	switch x := v.(type) {
	case obj:
		c := make(obj, len(x))
		for i := range x {
			c[i] = kv{x[i].k, clone(x[i].v)}
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i := range x {
			c[i] = clone(x[i])
		}
		return c
	case []obj:
		c := make([]obj, len(x))
		for i := range x {
			c[i] = clone(x[i]).(obj)
		}
		return c
	default:
		return v
	}
}
