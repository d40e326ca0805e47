package jsonscan

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// seeds are the provider fixtures and a few malformed bodies of the kinds
// providers send.
func seeds(f *testing.F) {
	for _, pattern := range []string{"../../normalize/testdata/*/*.json", "../../normalize/testdata/*/*/*.json"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{
		`[]`, `{}`, `-0.5e+7`, `"\u00e9\ud800"`, `[1,]`, `{"a"}`, `-`, `1.`, `1e`, `"\x"`, "\"\t\"", `[[[]]]`, ` true `, `nul`,
		`{"a":1,}`, `{"a":1 "b":2}`, `{'a': 1}`, "\ufeff{}", `{"a":01}`, `{"a":"b"} {}`, `{"a":{"b":[`, `{"a":"“x”"}`,
		`{"b":1,"a":{"d":[1.0,2e5,-0],"c":"\u0041\n\t\u0001"},"a":true}`, `[{},[],""]`, `{"\u00e9":1,"e":2,"é":3}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzValid holds Valid to json.Valid's verdict on every input.
func FuzzValid(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

func TestValidDepth(t *testing.T) {
	for _, n := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closer := map[string]string{"[": "]", `{"a":`: "}"}[open]
			b := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closer, n))
			if got, want := Valid(b), json.Valid(b); got != want {
				t.Errorf("depth %d of %s: Valid %v, json.Valid %v", n, open, got, want)
			}
		}
	}
}

func TestFirstInvalidUTF8(t *testing.T) {
	for in, want := range map[string]int{`{"a":"é"}`: -1, "": -1, "ab\xffc": 2, "é\xc3": 2} {
		if got := FirstInvalidUTF8([]byte(in)); got != want {
			t.Errorf("FirstInvalidUTF8(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzCanonical holds the canonical form content keys hash to an
// independent implementation: encoding/json's sorted-key encoding of the
// value decoded with UseNumber. The two differ only on U+2028 and U+2029,
// which encoding/json escapes, so inputs with those are skipped.
func FuzzCanonical(f *testing.F) {
	seeds(f)
	var c Canonical // reused, as the pool reuses one
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) {
			return
		}
		lower := strings.ToLower(string(b))
		if strings.Contains(lower, `\u2028`) || strings.Contains(lower, `\u2029`) ||
			strings.Contains(string(b), "\u2028") || strings.Contains(string(b), "\u2029") {
			return
		}
		got := c.Append([]byte("prefix:"), TrimWS(b))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if string(got) != "prefix:"+strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("canonical(%s)\n got %s\nwant %s", b, got, want.String())
		}
	})
}

func TestWalk(t *testing.T) {
	b := []byte(`{ "a" : [1, {"x":"]"}], "b\u0022" :"s\"t", "c":{"id": 7 ,"id":8}, "d":null }`)
	var names []string
	it := NewObjIter(b)
	for {
		k, v, off, ok := it.Next()
		if !ok {
			break
		}
		if string(b[off:off+len(v)]) != string(v) {
			t.Errorf("offset %d of %s", off, v)
		}
		name, _ := DecodeString(k)
		names = append(names, name+"="+Kind(v))
	}
	if got := strings.Join(names, " "); got != `a=array b"=string c=object d=null` {
		t.Errorf("members %s", got)
	}
	if !KeyIs([]byte(`"b\u0022"`), `b"`) || KeyIs([]byte(`"a"`), "b") {
		t.Error("KeyIs")
	}
	v := Member(b, `b"`)
	if s, ok := DecodeString(v[:SkipValue(v, 0)]); !ok || s != `s"t` {
		t.Errorf("Member b: %q %v", s, ok)
	}
	if v := Member(Member(b, "c"), "id"); len(v) == 0 || v[0] != '7' {
		t.Errorf("Member c.id: %s", v)
	}
	if Member(b, "z") != nil || Member([]byte(`[1]`), "a") != nil {
		t.Error("Member found what is not there")
	}
	var items []string
	EachItem(Member(b, "a")[:SkipValue(Member(b, "a"), 0)], func(item []byte, _ int) bool {
		items = append(items, string(item))
		return true
	})
	if strings.Join(items, "|") != `1|{"x":"]"}` {
		t.Errorf("items %v", items)
	}
	if Kind(nil) != "nothing" || Kind([]byte("true")) != "boolean" || Kind([]byte("-1")) != "number" {
		t.Error("Kind")
	}
}
