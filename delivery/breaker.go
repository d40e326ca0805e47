package delivery

import (
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// maxPauses bounds the pauses an engine remembers: older ones no longer
// matter once every event received before them is delivered or dead, and
// a destination that flaps for days must not grow the list without end.
const maxPauses = 256

// BreakerFailure reports whether an attempt's status counts as a failure
// of the destination for its circuit breaker: no response (connection
// refused, reset, timeout; status 0), a 5xx, or a 429. Any other status,
// including a 4xx, shows the backend up and answering: a 400 or a 410 is
// that event's problem, not the destination's, and resets the count.
func BreakerFailure(status int) bool {
	return status == 0 || status >= 500 || status == http.StatusTooManyRequests
}

// pauses are the intervals during which this engine held its destination
// paused (breaker open or half-open), oldest first; the last one has a
// zero to while the destination is paused. Attempts made within a pause
// (the probes) and the time a pause lasted do not count against an
// event's MaxAttempts and MaxAge.
type pauses struct {
	mu sync.Mutex
	w  []pause
}

type pause struct{ from, to time.Time }

func (p *pauses) open(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.w); n > 0 && p.w[n-1].to.IsZero() {
		return
	}
	if len(p.w) == maxPauses {
		p.w = append(p.w[:0], p.w[1:]...)
	}
	p.w = append(p.w, pause{from: at})
}

func (p *pauses) close(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.w); n > 0 && p.w[n-1].to.IsZero() {
		p.w[n-1].to = at
	}
}

// within reports whether t falls in a pause.
func (p *pauses) within(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.w {
		if !t.Before(w.from) && (w.to.IsZero() || t.Before(w.to)) {
			return true
		}
	}
	return false
}

// overlap is how long the destination was paused between from and to.
func (p *pauses) overlap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, w := range p.w {
		end := w.to
		if end.IsZero() || end.After(to) {
			end = to
		}
		start := w.from
		if start.Before(from) {
			start = from
		}
		if end.After(start) {
			d += end.Sub(start)
		}
	}
	return d
}

// recordBreaker feeds an attempt's outcome to the breaker, logs a change
// of state once, and returns the breaker's state after it.
func (e *Engine) recordBreaker(now time.Time, status int) throttle.Snapshot {
	before := e.breaker.Snapshot().State
	s, changed := e.breaker.Record(now, !BreakerFailure(status))
	if !changed {
		return s
	}
	e.observeBreaker(s.State)
	log := e.cfg.Logger
	switch {
	case s.State == throttle.Closed:
		e.pauses.close(now)
		log.Info("destination resumed: the backend answered; the backlog goes out at the destination's rate",
			zap.Duration("paused_for", now.Sub(e.pausedSince(now))))
		e.Notify()
	case before == throttle.Closed:
		e.pauses.open(s.OpenedAt)
		log.Warn("destination paused: consecutive failed attempts; one probe per cooldown until the backend answers",
			zap.Int("failures", s.Failures), zap.Duration("cooldown", s.Cooldown), zap.Time("next_probe", s.NextProbe))
		e.wakeAt(s.NextProbe)
	default: // a probe failed: still paused, with a longer cooldown
		log.Debug("probe failed; destination still paused",
			zap.Duration("cooldown", s.Cooldown), zap.Time("next_probe", s.NextProbe))
		e.wakeAt(s.NextProbe)
	}
	return s
}

// pausedSince is when the current (or last) pause began.
func (e *Engine) pausedSince(now time.Time) time.Time {
	e.pauses.mu.Lock()
	defer e.pauses.mu.Unlock()
	if n := len(e.pauses.w); n > 0 {
		return e.pauses.w[n-1].from
	}
	return now
}

func (e *Engine) observeBreaker(s throttle.State) {
	if o, ok := e.cfg.Observer.(BreakerObserver); ok {
		o.BreakerState(e.cfg.Destination, s)
	}
}

// decide applies the retry policy to an attempt, around the breaker:
//
//   - Attempts made within a pause of this engine (probes) do not count
//     toward MaxAttempts, and the time the destination was paused since the
//     event was received does not count toward its MaxAge.
//   - A probe never makes an event dead for attempts or age (a 410 still
//     does: the backend answered it).
//   - While the breaker is not closed after the attempt, a failed event's
//     next attempt is no later than the next probe, so when the destination
//     resumes the event is due already instead of on a long backoff, and
//     max age does not kill it (its next attempt falls in the pause).
func (e *Engine) decide(rec *store.Record, d *store.Delivery, res sendResult, probe bool, brk throttle.Snapshot, now time.Time) Verdict {
	counted := 0
	if !probe {
		counted = 1 // this attempt
	}
	for _, a := range d.Attempts {
		if !a.Replay && !e.pauses.within(a.At) {
			counted++
		}
	}
	received := rec.ReceivedAt.Add(e.pauses.overlap(rec.ReceivedAt, now))
	out := Outcome{Status: res.Attempt.Status, RetryAfter: res.RetryAfter}
	dec := e.cfg.Backoff.Decide(out, max(counted, 1), received, now)
	resumeBy := brk.NextProbe
	if brk.State == throttle.Closed {
		resumeBy = time.Time{}
	}
	switch {
	case probe && dec.Status == store.StatusDead && dec.Reason != store.DeadGone:
		if resumeBy.IsZero() { // the probe closed the breaker: try again at once
			resumeBy = now
		}
		return Verdict{Decision: store.RetryAt(resumeBy)}
	case resumeBy.IsZero():
	case dec.Status == store.StatusDead && dec.Reason == store.DeadMaxAge:
		// The next attempt falls in the pause, whose time does not count.
		return Verdict{Decision: store.RetryAt(resumeBy)}
	case dec.Status == store.StatusRetrying && dec.NextAttemptAt.After(resumeBy):
		dec.NextAttemptAt = resumeBy
	}
	return dec
}
