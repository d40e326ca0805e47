package filter

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// typeSet matches an event type against a list of patterns.
//
// A pattern is an exact type name, or a glob in which '*' stands for any
// run of characters, dots included, possibly empty; no other character is
// special and matching is case-sensitive, as CloudEvents types are. So
// "transaction.sale.*" matches "transaction.sale.success" and
// "transaction.sale.batch.closed" but not "transaction.refund.success";
// "*.voided" matches every void of every object; "order_*" matches the
// subscription platform's underscore names; "*" matches every type.
//
// Why characters rather than dot-separated segments: two of the three
// providers do not use dots as separators at all (the subscription platform
// writes "order_offer_updated"), a route's type prefix may end with any
// character, and a prefix glob is what an operator who writes
// "transaction.*" means whatever depth the provider adds later.
type typeSet struct {
	all   bool
	exact map[string]struct{}
	globs []glob
}

// glob is a pattern with at least one '*', split at its stars: the
// type must start with prefix, end with suffix, and contain the middle
// parts in order, without overlap, between them.
type glob struct {
	prefix, suffix string
	middle         []string
	minLen         int
}

func compileTypes(patterns []string) (typeSet, error) {
	var ts typeSet
	if len(patterns) == 0 {
		ts.all = true
		return ts, nil
	}
	for i, p := range patterns {
		if err := checkPattern(p); err != nil {
			return typeSet{}, fmt.Errorf("filter: types[%d] %q: %w", i, p, err)
		}
		if !strings.Contains(p, "*") {
			if ts.exact == nil {
				ts.exact = make(map[string]struct{}, len(patterns))
			}
			ts.exact[p] = struct{}{}
			continue
		}
		parts := strings.Split(p, "*")
		g := glob{prefix: parts[0], suffix: parts[len(parts)-1]}
		for _, m := range parts[1 : len(parts)-1] {
			if m != "" { // "**" is "*"
				g.middle = append(g.middle, m)
			}
		}
		g.minLen = len(g.prefix) + len(g.suffix)
		for _, m := range g.middle {
			g.minLen += len(m)
		}
		if g.minLen == 0 {
			ts.all = true
		}
		ts.globs = append(ts.globs, g)
	}
	return ts, nil
}

// checkPattern refuses what could never be a CloudEvents type the gateway
// emits, so that a typo such as a space or an empty entry fails at load
// rather than silently matching nothing.
func checkPattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty type pattern")
	case !utf8.ValidString(p):
		return fmt.Errorf("not valid UTF-8")
	case utf8.RuneCountInString(p) > schemas.MaxTypeLength:
		return fmt.Errorf("longer than %d characters", schemas.MaxTypeLength)
	}
	for _, r := range p {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("contains a space or control character")
		}
	}
	return nil
}

func (ts *typeSet) match(t string) bool {
	if ts.all {
		return true
	}
	if _, ok := ts.exact[t]; ok {
		return true
	}
	for i := range ts.globs {
		if ts.globs[i].match(t) {
			return true
		}
	}
	return false
}

// match is the leftmost greedy match, which is exact for globs whose only
// wildcard is '*': taking each middle part at its first occurrence leaves
// the most room for the ones after it.
func (g *glob) match(s string) bool {
	if len(s) < g.minLen || !strings.HasPrefix(s, g.prefix) || !strings.HasSuffix(s, g.suffix) {
		return false
	}
	s = s[len(g.prefix) : len(s)-len(g.suffix)]
	for _, m := range g.middle {
		i := strings.Index(s, m)
		if i < 0 {
			return false
		}
		s = s[i+len(m):]
	}
	return true
}
