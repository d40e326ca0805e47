package throttle

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of BreakerConfig.
const (
	// DefaultFailures is how many consecutive failures open the breaker.
	DefaultFailures = 5
	// DefaultCooldown is the wait before the first probe.
	DefaultCooldown = 5 * time.Second
	// DefaultMaxCooldown bounds the wait between probes: a backend back up
	// is noticed within a minute, at the cost of one request a minute to
	// one that stays down.
	DefaultMaxCooldown = time.Minute
)

// ErrBadBreaker is wrapped by the error NewBreaker returns for a bad
// BreakerConfig.
var ErrBadBreaker = errors.New("throttle: bad breaker")

// BreakerConfig tunes a Breaker. Zero fields take the defaults.
type BreakerConfig struct {
	// Failures is how many consecutive failed attempts open the breaker
	// (default 5).
	Failures int
	// Cooldown is the wait from opening to the first probe (default 5s).
	// It doubles after each failed probe, up to MaxCooldown.
	Cooldown time.Duration
	// MaxCooldown bounds the wait between probes (default 1m). It is also
	// how long a granted probe may go without an outcome before it is
	// taken as lost (the engine stopped) and another is granted.
	MaxCooldown time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Failures == 0 {
		c.Failures = DefaultFailures
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.MaxCooldown == 0 {
		c.MaxCooldown = max(DefaultMaxCooldown, c.Cooldown)
	}
	return c
}

// Validate reports a configuration NewBreaker refuses: a negative field,
// or a max_cooldown shorter than the cooldown.
func (c BreakerConfig) Validate() error {
	d := c.withDefaults()
	switch {
	case d.Failures < 1:
		return fmt.Errorf("%w: failures %d is not at least 1", ErrBadBreaker, c.Failures)
	case d.Cooldown < 0 || d.MaxCooldown < 0:
		return fmt.Errorf("%w: cooldown and max_cooldown must be positive", ErrBadBreaker)
	case d.MaxCooldown < d.Cooldown:
		return fmt.Errorf("%w: max_cooldown %s is shorter than cooldown %s", ErrBadBreaker, d.MaxCooldown, d.Cooldown)
	}
	return nil
}

// State is a breaker's state.
type State int

const (
	// Closed: the destination takes deliveries; failures are counted.
	Closed State = iota
	// Open: the destination is paused; nothing is sent until the next
	// probe is due.
	Open
	// HalfOpen: one probe is out; nothing else is sent until its outcome.
	HalfOpen
)

// String is "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText writes String, so a State is a string in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Permit is what Breaker.Allow lets the engine send.
type Permit int

const (
	// Deny: send nothing now.
	Deny Permit = iota
	// Pass: send as usual (the breaker is closed).
	Pass
	// Probe: send exactly one delivery, whose outcome decides whether the
	// breaker closes.
	Probe
)

// String is "deny", "pass" or "probe".
func (p Permit) String() string {
	switch p {
	case Deny:
		return "deny"
	case Pass:
		return "pass"
	case Probe:
		return "probe"
	}
	return fmt.Sprintf("Permit(%d)", int(p))
}

// Snapshot is a breaker's observable state, for metrics, the console and
// the admin API.
type Snapshot struct {
	// State is closed, open or half-open.
	State State `json:"state"`
	// Since is when State last changed; zero if it never has.
	Since time.Time `json:"since,omitzero"`
	// OpenedAt is when the current pause began (the breaker left Closed);
	// zero while closed.
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// Failures is the number of consecutive failed attempts.
	Failures int `json:"failures"`
	// Cooldown is the current wait between probes; zero while closed. In
	// JSON, nanoseconds, as Caddy writes durations.
	Cooldown time.Duration `json:"cooldown,omitempty"`
	// NextProbe is when the next probe may go: while open, the end of the
	// cooldown; while half-open, when the probe out is taken as lost.
	// Zero while closed.
	NextProbe time.Time `json:"next_probe,omitzero"`
	// Opens counts the times the breaker has opened from closed.
	Opens uint64 `json:"opens"`
}

// Breaker is a destination's circuit breaker: after Failures consecutive
// failed attempts it opens, and the destination is paused; once the
// cooldown has passed, Allow grants one probe (half-open); the probe's
// success closes the breaker and resets it, its failure opens it again for
// twice the cooldown, up to MaxCooldown. Any success closes it: an attempt
// started before it opened that succeeds says the backend is up.
//
// Every method that changes the state takes the current time; the Breaker
// reads no clock. It is safe for concurrent use.
type Breaker struct {
	cfg BreakerConfig

	mu sync.Mutex
	s  Snapshot
}

// NewBreaker returns a closed Breaker; see BreakerConfig.Validate for the
// configurations it refuses.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Breaker{cfg: cfg.withDefaults()}, nil
}

// Config returns the configuration with defaults applied.
func (b *Breaker) Config() BreakerConfig { return b.cfg }

// Allow says what the engine may send to the destination at now. While
// open it is Deny until the cooldown has passed, then Probe once (the
// breaker turns half-open); while half-open, Deny until the probe's
// outcome is recorded, or until MaxCooldown has passed without one, when
// another Probe is granted.
func (b *Breaker) Allow(now time.Time) Permit {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.s.State {
	case Closed:
		return Pass
	case Open:
		if now.Before(b.s.NextProbe) {
			return Deny
		}
		b.set(HalfOpen, now)
		b.s.NextProbe = now.Add(b.cfg.MaxCooldown)
		return Probe
	default: // HalfOpen
		if now.Before(b.s.NextProbe) {
			return Deny
		}
		b.s.NextProbe = now.Add(b.cfg.MaxCooldown) // the probe out is lost
		return Probe
	}
}

// CancelProbe returns a Probe permit that was not used (there was no
// delivery to send): the breaker is open again with a probe due at now,
// so the next delivery that comes probes at once. The cooldown does not
// grow.
func (b *Breaker) CancelProbe(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s.State == HalfOpen {
		b.set(Open, now)
		b.s.NextProbe = now
	}
}

// Record takes the outcome of an attempt that ended at now and returns
// the breaker's state after it, and whether the state changed (for a log
// line or an operator alert).
func (b *Breaker) Record(now time.Time, success bool) (Snapshot, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	before := b.s.State
	switch {
	case success:
		b.s.Failures = 0
		if before != Closed {
			b.set(Closed, now)
			b.s.OpenedAt, b.s.Cooldown, b.s.NextProbe = time.Time{}, 0, time.Time{}
		}
	case before == Closed:
		b.s.Failures++
		if b.s.Failures >= b.cfg.Failures {
			b.set(Open, now)
			b.s.Opens++
			b.s.OpenedAt = now
			b.s.Cooldown = b.cfg.Cooldown
			b.s.NextProbe = now.Add(b.s.Cooldown)
		}
	case before == HalfOpen:
		b.s.Failures++
		b.set(Open, now)
		b.s.Cooldown = min(2*b.s.Cooldown, b.cfg.MaxCooldown)
		b.s.NextProbe = now.Add(b.s.Cooldown)
	default: // Open: an attempt started before the breaker opened
		b.s.Failures++
	}
	return b.s, b.s.State != before
}

// Snapshot returns the breaker's state. It reads no clock: an open breaker
// whose NextProbe has passed stays Open until Allow grants the probe.
func (b *Breaker) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

func (b *Breaker) set(s State, now time.Time) {
	b.s.State = s
	b.s.Since = now
}
