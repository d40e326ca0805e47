package filter

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// jsonValue is the CEL value of one well-formed raw JSON value. Scalars
// are decoded at once; an object is a jsonObject, a view of its bytes that
// finds a member only when the expression asks for it, so that
// event.data.order.status reads two member names and one string out of a
// 12 KB payload instead of decoding all of it into maps. Arrays are decoded
// whole: filters iterate them (exists, all) rather than index them.
func jsonValue(raw []byte) ref.Val {
	raw = jsonscan.TrimWS(raw)
	if len(raw) == 0 {
		return types.NewErr("empty JSON value")
	}
	switch raw[0] {
	case '{':
		return &jsonObject{raw: raw}
	case '"':
		s, ok := jsonscan.DecodeString(raw)
		if !ok {
			return types.NewErr("bad JSON string")
		}
		return types.String(s)
	case 't':
		return types.True
	case 'f':
		return types.False
	case 'n':
		return types.NullValue
	case '[':
		var v []any
		if err := json.Unmarshal(raw, &v); err != nil {
			return types.NewErr("JSON array: %v", err)
		}
		return types.DefaultTypeAdapter.NativeToValue(v)
	default:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return types.NewErr("JSON number %s: %v", raw, err)
		}
		return types.Double(f)
	}
}

// jsonObject is a JSON object read lazily: member lookups scan its bytes;
// anything that needs the whole object (iteration, size, equality,
// conversion) decodes it once into a CEL map and delegates to it.
type jsonObject struct {
	raw     []byte
	decoded traits.Mapper
}

var _ traits.Mapper = (*jsonObject)(nil)

// find returns the raw value of the member called key. It takes the last
// member of that name, as encoding/json does (the normalizer refuses
// duplicate names anyway).
func (o *jsonObject) find(key string) ([]byte, bool) {
	var found []byte
	it := jsonscan.NewObjIter(o.raw)
	for {
		k, v, _, ok := it.Next()
		if !ok || len(k) < 2 { // len: a key cut short, in malformed data
			break
		}
		if jsonscan.KeyIs(k, key) {
			found = v
		}
	}
	return found, found != nil
}

// Find implements traits.Mapper: a JSON object's keys are strings, so any
// other key is absent.
func (o *jsonObject) Find(key ref.Val) (ref.Val, bool) {
	s, ok := key.(types.String)
	if !ok {
		if types.IsUnknownOrError(key) {
			return key, false
		}
		return nil, false
	}
	raw, ok := o.find(string(s))
	if !ok {
		return nil, false
	}
	return jsonValue(raw), true
}

// Get implements traits.Indexer.
func (o *jsonObject) Get(key ref.Val) ref.Val {
	v, ok := o.Find(key)
	if !ok {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container (the `in` operator).
func (o *jsonObject) Contains(key ref.Val) ref.Val {
	v, ok := o.Find(key)
	if !ok && v != nil {
		return v
	}
	return types.Bool(ok)
}

func (o *jsonObject) whole() traits.Mapper {
	if o.decoded == nil {
		var m map[string]any
		if err := json.Unmarshal(o.raw, &m); err != nil {
			m = map[string]any{} // malformed data, which a schemas.Event does not have
		}
		o.decoded = types.DefaultTypeAdapter.NativeToValue(m).(traits.Mapper)
	}
	return o.decoded
}

// Iterator implements traits.Iterable.
func (o *jsonObject) Iterator() traits.Iterator { return o.whole().Iterator() }

// Size implements traits.Sizer.
func (o *jsonObject) Size() ref.Val { return o.whole().Size() }

// ConvertToNative implements ref.Val.
func (o *jsonObject) ConvertToNative(t reflect.Type) (any, error) {
	return o.whole().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (o *jsonObject) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return o
	case types.TypeType:
		return types.MapType
	}
	return o.whole().ConvertToType(t)
}

// Equal implements ref.Val.
func (o *jsonObject) Equal(other ref.Val) ref.Val {
	if oo, ok := other.(*jsonObject); ok {
		other = oo.whole()
	}
	return o.whole().Equal(other)
}

// Type implements ref.Val.
func (o *jsonObject) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (o *jsonObject) Value() any { return o.whole().Value() }

// String is for CEL's string formatting of values in error messages.
func (o *jsonObject) String() string { return fmt.Sprint(o.whole()) }
