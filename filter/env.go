package filter

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
)

// sharedEnv is the one CEL environment of the package: building it costs
// about a millisecond and it is read-only once built, so every Compile
// shares it.
var sharedEnv = sync.OnceValues(func() (*cel.Env, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("filter: CEL environment: %w", err)
	}
	return env, nil
})
