// Package testwait is how the tests wait: on a condition, polled, never on
// a fixed sleep.
package testwait

import (
	"testing"
	"time"
)

// Timeout bounds every wait. It only bounds how long a broken test takes
// to fail: a wait whose condition holds returns at once, so the bound can
// be generous enough for a loaded machine running the suite under -race.
const Timeout = 2 * time.Minute

// For polls cond until it holds, failing t with what it waited for when
// Timeout passes first.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", Timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
