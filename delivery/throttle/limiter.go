package throttle

import (
	"fmt"
	"sync"
	"time"
)

// DefaultBurst is the burst of a Limiter whose burst is not set: a tenth
// of a second's worth of deliveries at the rate, at least 1 and at most
// MaxDefaultBurst. A claim loop can then take a small batch at a time
// without the rate's average being exceeded over any longer window.
func DefaultBurst(r Rate) int {
	b := int(r.PerSecond() / 10)
	return min(max(b, 1), MaxDefaultBurst)
}

// MaxDefaultBurst bounds DefaultBurst, so a high rate does not let a
// recovering backend receive a large burst at once.
const MaxDefaultBurst = 50

// Limiter paces the start of deliveries at a Rate, allowing bursts of up
// to a fixed number. It is a token bucket kept as one time (the
// generic cell rate algorithm): no timer and no goroutine, every method
// takes the current time. The zero Limiter is not usable; use NewLimiter.
//
// x/time/rate also takes the time as a parameter, but its token count is
// a float and it has no way to give back tokens taken for deliveries the
// claim found were not there (Refund), which a claim loop needs.
type Limiter struct {
	rate     Rate
	burst    int
	interval time.Duration // between two starts
	tau      time.Duration // burst × interval: how far ahead tat may run

	mu sync.Mutex
	// tat is the theoretical arrival time: when the bucket would be full
	// again if nothing more were taken. At or before now, it is full.
	tat time.Time
}

// MaxBurst bounds a Limiter's burst.
const MaxBurst = 10_000

// NewLimiter returns a full Limiter for r with room for burst starts at
// once; burst 0 means DefaultBurst(r). An invalid rate or a burst outside
// [0, MaxBurst] is an error wrapping ErrBadRate.
func NewLimiter(r Rate, burst int) (*Limiter, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrBadRate, r, err)
	}
	if burst < 0 || burst > MaxBurst {
		return nil, fmt.Errorf("%w: burst %d is not between 1 and %d (or 0 for the default)", ErrBadRate, burst, MaxBurst)
	}
	if burst == 0 {
		burst = DefaultBurst(r)
	}
	iv := r.interval()
	return &Limiter{rate: r, burst: burst, interval: iv, tau: time.Duration(burst) * iv}, nil
}

// Rate returns the limiter's rate.
func (l *Limiter) Rate() Rate { return l.rate }

// Burst returns how many starts the limiter allows at once.
func (l *Limiter) Burst() int { return l.burst }

// Take grants up to want starts at now and returns how many (from 0 to
// want) and when the next start may be made: now if more are available
// already, else the time the next one will be. The caller must start at
// most n deliveries and Refund those it could not start.
func (l *Limiter) Take(now time.Time, want int) (n int, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	// Room left in the bucket: how many intervals tat may still advance
	// before it is tau ahead of now.
	avail := int(now.Add(l.tau).Sub(tat) / l.interval)
	n = min(max(want, 0), avail)
	tat = tat.Add(time.Duration(n) * l.interval)
	l.tat = tat
	next = tat.Add(l.interval - l.tau)
	if next.Before(now) {
		next = now
	}
	return n, next
}

// Refund gives back n starts taken but not made (the claim found fewer
// deliveries than it was granted). It never makes the bucket hold more
// than its burst.
func (l *Limiter) Refund(n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	l.tat = l.tat.Add(-time.Duration(n) * l.interval)
	l.mu.Unlock()
}

// Available returns how many starts Take would grant at now, without
// taking them.
func (l *Limiter) Available(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	return int(now.Add(l.tau).Sub(tat) / l.interval)
}
