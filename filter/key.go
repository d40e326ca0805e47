package filter

import (
	"errors"
	"fmt"
	"strconv"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// KeySubject is the order_by value that keys lanes by the canonical
// event's subject without an expression.
const KeySubject = "subject"

// Key is a destination's ordering key (its order_by): evaluated once per
// event at ingest, it names the lane the event's delivery joins. It is
// safe for concurrent use.
type Key struct {
	src     string
	subject bool
	prg     cel.Program
}

// CompileKey compiles an order_by value: "subject" (the canonical event's
// subject), or a CEL expression over the canonical event, in the
// environment filters use, whose value is a string or a number
// (`event.data.object.key`, `event.subject + "/" + event.provider`). An
// expression that does not compile, or whose type can be neither, is an
// *ExprError naming the position.
func CompileKey(src string) (*Key, error) {
	if src == KeySubject {
		return &Key{src: src, subject: true}, nil
	}
	env, err := sharedEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		e := &ExprError{Expression: src}
		for i, ce := range iss.Errors() {
			line, col := ce.Location.Line(), ce.Location.Column()+1
			if i == 0 {
				e.Line, e.Column, e.Message = line, col, ce.Message
				continue
			}
			e.Message += fmt.Sprintf("; %d:%d: %s", line, col, ce.Message)
		}
		return nil, e
	}
	switch t := ast.OutputType(); {
	case t.IsExactType(types.StringType), t.IsExactType(types.DynType), t.IsExactType(types.IntType),
		t.IsExactType(types.UintType), t.IsExactType(types.DoubleType):
	default:
		return nil, &ExprError{Expression: src, Message: fmt.Sprintf("an ordering key must be a string or a number, not %s", t)}
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &ExprError{Expression: src, Message: err.Error()}
	}
	return &Key{src: src, prg: prg}, nil
}

// String is the order_by value the key was compiled from.
func (k *Key) String() string { return k.src }

// Eval returns the lane of the event in: its key as a string (a number in
// its shortest decimal form), "" when the key is empty. An error wraps
// ErrEval (a missing field, a value of another type, the cost limit); the
// caller decides what the event gets then.
func (k *Key) Eval(in *Input) (string, error) {
	if k.subject {
		return in.ev.Subject, nil
	}
	out, _, err := k.prg.Eval(in)
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return "", fmt.Errorf("%w: %w: order_by %q: %v", ErrEval, ErrCostLimit, k.src, err)
		}
		return "", fmt.Errorf("%w: order_by %q: %v", ErrEval, k.src, err)
	}
	switch v := out.(type) {
	case types.String:
		return string(v), nil
	case types.Int:
		return strconv.FormatInt(int64(v), 10), nil
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10), nil
	case types.Double:
		return strconv.FormatFloat(float64(v), 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%w: order_by %q: value is %s, not a string or a number", ErrEval, k.src, out.Type())
}
