package normalize

import (
	"bytes"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// envelope holds the top-level members of a body, as sub-slices of it.
// Names match exactly (unlike encoding/json's case-insensitive struct
// matching). Duplicate names are refused (I-JSON, RFC 7493): with two
// "event_id" members, the gateway and the backend's parser could each read
// a different one.
type envelope struct {
	body    []byte
	members []memberAt
}

// memberAt is one object member: its decoded name, its raw value and the
// value's offset in the body.
type memberAt struct {
	name string
	val  []byte
	off  int
}

// get returns the raw value of the member called name, or nil.
func (e *envelope) get(name string) []byte {
	if m := e.find(name); m != nil {
		return m.val
	}
	return nil
}

// offset returns the body offset of the member called name, or -1.
func (e *envelope) offset(name string) int {
	if m := e.find(name); m != nil {
		return m.off
	}
	return -1
}

func (e *envelope) has(name string) bool { return e.find(name) != nil }

func (e *envelope) find(name string) *memberAt {
	for i := range e.members {
		if e.members[i].name == name {
			return &e.members[i]
		}
	}
	return nil
}

// parseEnvelope checks that body is a UTF-8 JSON object and indexes its
// top-level members.
func parseEnvelope(body []byte, env *envelope) *InputError {
	if !jsonscan.Valid(body) {
		return syntaxError(body)
	}
	if off := jsonscan.FirstInvalidUTF8(body); off >= 0 {
		e := &InputError{Kind: KindSyntax, Reason: "byte is not UTF-8; JSON must be UTF-8"}
		e.locate(body, off)
		return e
	}
	start := jsonscan.SkipWS(body, 0)
	if body[start] != '{' {
		return envelopeErr("", body, start, "body must be a JSON object, got "+jsonscan.Kind(body[start:]))
	}
	env.body = body
	env.members = env.members[:0]
	var ierr *InputError
	eachUnique(body, start, "", func(name string, val []byte, off int) {
		env.members = append(env.members, memberAt{name: name, val: val, off: off})
	}, &ierr)
	return ierr
}

// uniqueObject checks that the object at body[off:] (when it is one) has no
// duplicate member names; path names it in the error ("event_body").
func uniqueObject(provider string, body []byte, off int, path string) *InputError {
	if off < 0 || off >= len(body) || body[off] != '{' {
		return nil
	}
	var ierr *InputError
	eachUnique(body, off, path, nil, &ierr)
	if ierr != nil {
		ierr.Provider = provider
	}
	return ierr
}

// smallObject is how many members are compared pairwise before a map is
// worth its allocation.
const smallObject = 16

// eachUnique calls fn (if not nil) with each member of the object at
// body[start] and sets *ierr, stopping, at the first duplicate name.
func eachUnique(body []byte, start int, path string, fn func(name string, val []byte, off int), ierr **InputError) {
	var small [smallObject]string
	names := small[:0]
	var seen map[string]struct{}
	it := jsonscan.NewObjIter(body[start:])
	for {
		k, v, off, ok := it.Next()
		if !ok {
			return
		}
		name := string(k[1 : len(k)-1])
		if bytes.IndexByte(k, '\\') >= 0 {
			name, _ = jsonscan.DecodeString(k)
		}
		dup := false
		if seen == nil {
			for _, n := range names {
				dup = dup || n == name
			}
			names = append(names, name)
			if len(names) == smallObject {
				seen = make(map[string]struct{}, 2*smallObject)
				for _, n := range names {
					seen[n] = struct{}{}
				}
			}
		} else {
			_, dup = seen[name]
			seen[name] = struct{}{}
		}
		if dup {
			field := name
			if path != "" {
				field = path + "." + name
			}
			*ierr = fieldErr("", field, body, start+off, "member appears more than once; JSON member names must be unique (RFC 7493)")
			return
		}
		if fn != nil {
			fn(name, v, start+off)
		}
	}
}

// Detect reports which provider's envelope body is, from its top-level
// member names alone (the values are not checked: Normalize does that). The
// error is an *InputError when body is not a JSON object or matches no
// envelope. Normalize with Provider Auto does the same detection; Detect is
// for callers that need the provider before normalizing, e.g. to pick
// verification settings.
func Detect(body []byte) (string, error) {
	var env envelope
	if err := parseEnvelope(body, &env); err != nil {
		return "", err
	}
	p, err := resolve(&env, Auto)
	if err != nil {
		return "", err
	}
	return p.name, nil
}
