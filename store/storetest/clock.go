package storetest

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when told to, for an engine's Now option:
// a test advances it past an expiry instead of sleeping, so the expiry is
// proven without waiting and without depending on the machine's speed. It
// is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads the current wall time until advanced.
// Starting at the wall time keeps what an engine hands to its database's own
// wall-clock expiry (Badger's TTLs) in the future; it is truncated to the
// microsecond, PostgreSQL's precision, so that a time an engine derives from
// it compares equal to the clock's arithmetic.
func NewClock() *Clock { return &Clock{now: time.Now().Truncate(time.Microsecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
