package delivery

import (
	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// DeadEventObserver is implemented by an Observer that wants to know which
// event's delivery went dead (an operator alert names it), beyond the
// counts Dead feeds. The engine calls it after Dead.
type DeadEventObserver interface {
	DeadEvent(source, id, destination string, reason store.DeadReason)
}

// Hold pauses (held true) or resumes (false) the engine's destination by
// an operator's decision: while held, the engine claims nothing, not even
// the breaker's probes, and a replay still goes out (the operator asked
// for it). It is in memory, for this engine alone: another gateway sharing
// the store goes on delivering, and the engine of a reloaded config starts
// unheld. Like a breaker pause, the time a destination is held does not
// count toward its deliveries' max_age, and nothing is attempted meanwhile,
// so a hold kills no event. It reports whether the state changed.
func (e *Engine) Hold(held bool) bool {
	if e.held.Swap(held) == held {
		return false
	}
	now := e.cfg.Now()
	if held {
		e.pauses.open(now)
		e.cfg.Logger.Info("destination paused by an operator")
		return true
	}
	if e.breaker.Snapshot().State == throttle.Closed { // closed: the pause was the operator's alone
		e.pauses.close(now)
	}
	e.cfg.Logger.Info("destination resumed by an operator")
	e.Notify()
	return true
}

// Held reports whether an operator holds the destination paused (Hold).
func (e *Engine) Held() bool { return e.held.Load() }

// RateLimit is the destination's configured rate limit in this engine; the
// zero Rate for none.
func (e *Engine) RateLimit() throttle.Rate { return e.cfg.Rate }
