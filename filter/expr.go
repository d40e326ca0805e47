package filter

import (
	"errors"
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// CostLimit bounds the work one evaluation of an expression may do, in
// cel-go's cost units: about one per operation or member access, about 7
// per list element an exists() or all() visits, string functions and
// regular expressions in proportion to the string's length. An expression
// that reaches it stops and counts as an evaluation error (ErrCostLimit),
// so no expression can hold up ingest: reaching it takes a few
// milliseconds. Real filters are far below it: a comparison of a few
// fields costs under 10, a search through 1,000 line items about 7,000.
const CostLimit = 10_000

// ErrEval is wrapped by every error Match returns: the expression could not
// be evaluated for this event (a missing field, a type mismatch, a result
// that is not a boolean, the cost limit). The event does not match.
var ErrEval = errors.New("filter: expression evaluation failed")

// ErrCostLimit is wrapped, with ErrEval, when an evaluation stopped at
// CostLimit.
var ErrCostLimit = errors.New("filter: expression cost limit exceeded")

// ExprError is a filter expression that does not compile: a syntax error,
// an unknown field or function, a type error, or a result that is not a
// boolean. Line and Column (both from 1) locate the first problem.
type ExprError struct {
	// Expression is the expression as configured.
	Expression string
	// Line and Column locate the first problem, from 1; 0 when the
	// problem is the expression as a whole (its result type).
	Line, Column int
	// Message is cel-go's description of the first problem, followed by
	// "; line:column: description" for each other one.
	Message string
}

// Error names the expression, the position and the problem.
func (e *ExprError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("filter: expression %q: %d:%d: %s", e.Expression, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("filter: expression %q: %s", e.Expression, e.Message)
}

// eventTypeName is the CEL type of the variable "event".
const eventTypeName = "webhookgw.Event"

// eventFields are the fields of "event" and their CEL types. subject is
// always present ("" when the provider names no object), so that
// `event.subject == ""` works without has().
var eventFields = map[string]*types.Type{
	"id":       types.StringType,
	"source":   types.StringType,
	"type":     types.StringType,
	"subject":  types.StringType,
	"time":     types.TimestampType,
	"provider": types.StringType,
	"data":     types.DynType,
}

var eventFieldNames = []string{"id", "source", "type", "subject", "time", "provider", "data"}

// eventProvider declares the event type to the checker and reads its
// fields from an *Input at run time, so that only the fields an
// expression reads are converted and the data is looked at only if read.
type eventProvider struct {
	*types.Registry
	fields map[string]*types.FieldType
}

func newEventProvider() (*eventProvider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &eventProvider{Registry: reg, fields: map[string]*types.FieldType{}}
	for name, t := range eventFields {
		p.fields[name] = &types.FieldType{
			Type:    t,
			IsSet:   func(target any) bool { _, ok := target.(*Input); return ok },
			GetFrom: getter(name),
		}
	}
	return p, nil
}

func getter(name string) ref.FieldGetter {
	return func(target any) (any, error) {
		in, ok := target.(*Input)
		if !ok {
			return nil, fmt.Errorf("event is a %T", target)
		}
		ev := in.ev
		switch name {
		case "id":
			return ev.ID, nil
		case "source":
			return ev.Source, nil
		case "type":
			return ev.Type, nil
		case "subject":
			return ev.Subject, nil
		case "time":
			return ev.Time, nil
		case "provider":
			return ev.Provider, nil
		default:
			return in.decodeData()
		}
	}
}

func (p *eventProvider) FindStructType(name string) (*types.Type, bool) {
	if name == eventTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(eventTypeName)), true
	}
	return p.Registry.FindStructType(name)
}

func (p *eventProvider) FindStructFieldNames(name string) ([]string, bool) {
	if name == eventTypeName {
		return eventFieldNames, true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *eventProvider) FindStructFieldType(structType, field string) (*types.FieldType, bool) {
	if structType == eventTypeName {
		ft, ok := p.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(structType, field)
}

// newEnv is the CEL environment of every filter: the standard library
// (the language of Caddy's expression matcher), optional field access
// (event.data.?order.?status.orValue("")), and the one variable "event".
func newEnv() (*cel.Env, error) {
	p, err := newEventProvider()
	if err != nil {
		return nil, err
	}
	return cel.NewEnv(
		cel.CustomTypeProvider(p),
		cel.Variable("event", types.NewObjectType(eventTypeName)),
		cel.OptionalTypes(),
	)
}

// expr is a compiled expression.
type expr struct {
	src string
	prg cel.Program
}

func compileExpr(env *cel.Env, src string) (*expr, error) {
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		e := &ExprError{Expression: src}
		for i, ce := range iss.Errors() {
			line, col := ce.Location.Line(), ce.Location.Column()+1 // cel-go counts columns from 0
			if i == 0 {
				e.Line, e.Column, e.Message = line, col, ce.Message
				continue
			}
			e.Message += fmt.Sprintf("; %d:%d: %s", line, col, ce.Message)
		}
		return nil, e
	}
	// dyn is accepted, as Caddy's expression matcher accepts it: a field of
	// the data is dyn, and `event.data.test` is a fair filter when the
	// field is a boolean. A non-boolean at run time is an ErrEval.
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, &ExprError{Expression: src, Message: fmt.Sprintf("must be a boolean, not %s", t)}
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &ExprError{Expression: src, Message: err.Error()}
	}
	return &expr{src: src, prg: prg}, nil
}

func (x *expr) eval(in *Input) (bool, error) {
	out, _, err := x.prg.Eval(in)
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return false, fmt.Errorf("%w: %w: expression %q: %v", ErrEval, ErrCostLimit, x.src, err)
		}
		return false, fmt.Errorf("%w: expression %q: %v", ErrEval, x.src, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%w: expression %q: result is %s, not a boolean", ErrEval, x.src, out.Type())
	}
	return bool(b), nil
}

// Input is one event as filters see it. Build one per event with NewInput
// and pass it to every destination's Filter.MatchInput: the view of the
// event's data is then made once, by the first expression that reads it,
// and not at all when none does. An Input is not safe for concurrent use.
type Input struct {
	ev      *schemas.Event
	data    ref.Val
	decoded bool
}

// NewInput wraps ev, which must not change while the Input is in use.
func NewInput(ev *schemas.Event) *Input { return &Input{ev: ev} }

// ResolveName makes an Input the activation of an evaluation: it is the
// one variable, "event".
func (in *Input) ResolveName(name string) (any, bool) {
	if name == "event" {
		return in, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (in *Input) Parent() interpreter.Activation { return nil }

// decodeData returns the event's data as a CEL value: a lazy view of a
// JSON object (see jsonValue). The data is not checked again: a
// schemas.Event's data is well-formed JSON (the normalizer checked the
// whole body), and checking it would cost three times what reading a
// member out of it does. A malformed payload cannot make an evaluation
// panic (cel-go turns a panic into an error, and the scanner checks its
// bounds), but may read as something else.
func (in *Input) decodeData() (any, error) {
	if !in.decoded {
		in.decoded = true
		if len(in.ev.Data) == 0 {
			in.data = types.NullValue
		} else {
			in.data = jsonValue(in.ev.Data)
		}
	}
	return in.data, nil
}
