package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Backoff defaults, matching the payment gateway's own retry window (~72 h).
const (
	DefaultInitialDelay = time.Second
	DefaultMaxDelay     = time.Hour
	DefaultMaxAttempts  = 20
	DefaultMaxAge       = 72 * time.Hour
)

// Backoff is the retry policy of asynchronous delivery. The zero value uses
// the defaults above.
type Backoff struct {
	// InitialDelay is the ceiling of the first retry delay. Default: 1s.
	InitialDelay time.Duration
	// MaxDelay caps the backoff ceiling, which doubles after each failed
	// attempt. Default: 1h.
	MaxDelay time.Duration
	// MaxRetryAfter caps a backend's Retry-After, so a buggy or hostile
	// answer ("Retry-After: 31536000") cannot park an event for a year.
	// Default: MaxDelay.
	MaxRetryAfter time.Duration
	// MaxAttempts is the number of scheduled attempts (replays excluded)
	// after which an event is dead. Default: 20.
	MaxAttempts int
	// MaxAge is how long after it was received an event may still be
	// attempted; an event whose next attempt would fall later is dead.
	// Default: 72h.
	MaxAge time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.InitialDelay <= 0 {
		b.InitialDelay = DefaultInitialDelay
	}
	if b.MaxDelay <= 0 {
		b.MaxDelay = DefaultMaxDelay
	}
	if b.MaxDelay < b.InitialDelay {
		b.MaxDelay = b.InitialDelay
	}
	if b.MaxRetryAfter <= 0 {
		b.MaxRetryAfter = b.MaxDelay
	}
	if b.MaxAttempts <= 0 {
		b.MaxAttempts = DefaultMaxAttempts
	}
	if b.MaxAge <= 0 {
		b.MaxAge = DefaultMaxAge
	}
	return b
}

// Ceiling is the upper bound of the delay after failed attempt number n
// (1-based): min(MaxDelay, InitialDelay * 2^(n-1)).
func (b Backoff) Ceiling(n int) time.Duration {
	b = b.withDefaults()
	d := b.InitialDelay
	for i := 1; i < n && d < b.MaxDelay; i++ {
		d *= 2 // cannot overflow: d < MaxDelay before doubling
	}
	return min(d, b.MaxDelay)
}

// Delay draws the delay after failed attempt n with full jitter: uniform in
// [0, Ceiling(n)]. Full jitter spreads the retries of a burst of events that
// failed together (a backend outage) instead of sending them back in waves.
func (b Backoff) Delay(n int) time.Duration {
	return time.Duration(rand.Int64N(int64(b.Ceiling(n)) + 1))
}

// Outcome is what one attempt produced, as the policy sees it.
type Outcome struct {
	// Status is the HTTP status, 0 when no response was received.
	Status int
	// RetryAfter is the backend's Retry-After, 0 when absent.
	RetryAfter time.Duration
}

// Verdict is the policy's answer to an attempt: the store.Decision the
// store records (the state the event moves to), with the words for the log.
type Verdict struct {
	store.Decision
	// Detail explains a dead decision for logs and the operator, with the
	// numbers of the policy ("attempts exhausted (20)").
	Detail string
}

// Decide applies the policy to attempt number attempts (scheduled attempts
// made so far, this one included) of an event received at receivedAt.
//
//   - 2xx: delivered.
//   - 410 Gone: dead at once; the backend says the endpoint is gone for good.
//   - anything else (other statuses, network errors): retry after the larger
//     of the jittered backoff and Retry-After (capped at MaxRetryAfter),
//     unless that was the last attempt or the retry would fall after MaxAge.
func (b Backoff) Decide(o Outcome, attempts int, receivedAt, now time.Time) Verdict {
	b = b.withDefaults()
	switch {
	case o.Status >= 200 && o.Status <= 299:
		return Verdict{Decision: store.Delivered()}
	case o.Status == http.StatusGone:
		return Verdict{store.Dead(store.DeadGone), "backend answered 410 Gone"}
	case attempts >= b.MaxAttempts:
		return Verdict{store.Dead(store.DeadAttemptsExhausted), "attempts exhausted (" + strconv.Itoa(attempts) + ")"}
	}
	delay := max(b.Delay(attempts), min(o.RetryAfter, b.MaxRetryAfter))
	next := now.Add(delay)
	if next.After(receivedAt.Add(b.MaxAge)) {
		return Verdict{store.Dead(store.DeadMaxAge), "max age " + b.MaxAge.String() + " reached"}
	}
	return Verdict{Decision: store.RetryAt(next)}
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date. It returns 0 when the header is absent, malformed, negative or in
// the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp before converting so a huge value cannot overflow.
		const maxSecs = int64((1<<63 - 1) / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
