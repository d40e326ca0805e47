// Package filter decides which of a route's destinations an event goes
// to. A Filter is compiled once, when the configuration loads, from a list
// of type patterns and an optional CEL expression over the canonical event
// (the expression language of Caddy's own `expression` matcher); it is
// then evaluated once per event at ingest, so a bad pattern or expression
// refuses the configuration rather than dropping events later.
//
// The expression sees one variable, event, with the canonical event's
// fields:
//
//	event.id        string     the canonical id
//	event.source    string     the route's source, "/usaepay" by default
//	event.type      string     the type, with the route's prefix if any
//	event.subject   string     the object id, "" when there is none
//	event.time      timestamp  when the event happened
//	event.provider  string     usaepay, sublytics, openloyalty, ...
//	event.data      dyn        the provider's payload, as JSON values
//
// event.data reads as JSON: objects are maps (read lazily, member by
// member, from the payload's bytes), arrays lists, and every number a
// double (so event.data.order.id == 123 holds for the JSON number
// 123, and integers above 2^53 lose precision; compare such ids as
// strings). Amounts the payment gateway sends as strings ("5.00") compare
// as numbers with double(event.data.object.amount_detail.amount) > 100.0.
// Optional field syntax guards fields that are not always there:
// event.data.?object.?status.orValue("") == "voided".
//
// A field the expression reads that the event does not have (event.data.x
// when data has no x) is an evaluation error: Match reports no match and
// an error wrapping ErrEval, which the caller logs; it never panics. So is
// an evaluation that reaches CostLimit.
package filter

import "github.com/webhookgw/caddy-webhook-gateway/schemas"

// Config is a destination's filter as configured. The zero Config matches
// every event.
type Config struct {
	// Types are the event types the destination takes: exact names
	// ("transaction.sale.success") or globs where '*' matches any run of
	// characters, dots included ("transaction.sale.*", "*.voided",
	// "order_*", "*"). Matching is case-sensitive and includes the route's
	// type prefix, if it sets one. Empty means every type.
	Types []string `json:"types,omitempty"`

	// Expression is a CEL expression over the canonical event, such as
	// `event.type.startsWith("transaction.") && event.subject != ""`
	// or `double(event.data.object.amount_detail.amount) >= 100.0`.
	// It must be boolean. An event goes to the destination when its type
	// matches Types and this expression is true; an expression that fails
	// for an event (a missing field) does not match it. Empty means true.
	Expression string `json:"filter,omitempty"`
}

// Filter is a compiled Config. It is safe for concurrent use.
type Filter struct {
	types typeSet
	expr  *expr // nil: no expression
}

// Compile checks and compiles c. A bad type pattern, or an expression that
// does not parse, names an unknown field or function, has a type error or
// is not boolean, is an error; for an expression it is an *ExprError that
// names the expression and the line:column of the problem.
func Compile(c Config) (*Filter, error) {
	ts, err := compileTypes(c.Types)
	if err != nil {
		return nil, err
	}
	f := &Filter{types: ts}
	if c.Expression != "" {
		env, err := sharedEnv()
		if err != nil {
			return nil, err
		}
		if f.expr, err = compileExpr(env, c.Expression); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// MatchesAll reports whether f lets every event through (no types, no
// expression), so a caller can skip it.
func (f *Filter) MatchesAll() bool { return f.types.all && f.expr == nil }

// Match reports whether ev passes f: its type matches one of the patterns
// and the expression, if any, is true. The error, when not nil, wraps
// ErrEval and says why the expression could not be evaluated; the event
// then does not match.
func (f *Filter) Match(ev *schemas.Event) (bool, error) {
	if !f.types.match(ev.Type) {
		return false, nil
	}
	if f.expr == nil {
		return true, nil
	}
	return f.expr.eval(NewInput(ev))
}

// MatchInput is Match for an event wrapped in an Input, which sets up its
// view of the event's data at most once for all the filters it is matched
// against.
func (f *Filter) MatchInput(in *Input) (bool, error) {
	if !f.types.match(in.ev.Type) {
		return false, nil
	}
	if f.expr == nil {
		return true, nil
	}
	return f.expr.eval(in)
}
