// Package countcache reuses the counts of a store among its readers.
//
// Counting scans a store's listing index, about a second per million
// events: too slow to run for every metrics scrape or every console
// refresh, and a cost that must not grow with the number of readers. A
// Cache holds one store's last count under one policy:
//
//   - One count at a time: readers arriving while a count runs share it.
//   - A count is reused for the cache's period, or for four times as long
//     as it took if that is longer, so a store whose count takes longer
//     than the period never keeps a core busy counting.
//   - Get waits for a count when the last one is too old, or when the
//     caller asks for a fresh one (an operator loading a page, not a
//     timer); a fresh ask joins a count already under way.
//   - Peek never waits except for the very first count: it returns the
//     last count at once and, if that is too old, starts one in the
//     background.
//   - A failed count keeps the previous one; the next read tries again.
//   - A count runs detached from the reader that started it, so a reader
//     that leaves does not fail the count the others wait for.
package countcache

import (
	"context"
	"sync"
	"time"
)

// Cache holds one store's last count. Create it with New.
type Cache[T any] struct {
	count   func(context.Context) (T, error)
	period  time.Duration
	timeout time.Duration

	mu      sync.Mutex
	last    T
	have    bool
	at      time.Time     // when last was counted
	took    time.Duration // how long counting last took
	running *flight[T]    // the count under way, if any
}

// flight is one count; done is closed once value and err are set.
type flight[T any] struct {
	done  chan struct{}
	value T
	err   error
	// readers counts the Gets waiting on the flight, so that a test can
	// tell they all joined it before letting it end.
	readers int
}

// New returns a cache whose counts come from count, reused for period (or
// longer, see the package doc). A count gets at most timeout (no limit if
// 0).
func New[T any](period, timeout time.Duration, count func(context.Context) (T, error)) *Cache[T] {
	return &Cache[T]{count: count, period: period, timeout: timeout}
}

// Get returns the last count if it is recent enough and fresh is false;
// otherwise it waits for a count, joining one under way. It fails with the
// count's error, or ctx's if ctx ends first.
func (c *Cache[T]) Get(ctx context.Context, fresh bool) (T, error) {
	c.mu.Lock()
	if !fresh && c.current() {
		value := c.last
		c.mu.Unlock()
		return value, nil
	}
	f := c.start()
	f.readers++
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.value, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Peek returns the last count at once, starting a count in the background
// if it is too old. Before the first count has ended it waits for it, at
// most wait, rather than report nothing; ok is false if there is still no
// count.
func (c *Cache[T]) Peek(wait time.Duration) (value T, ok bool) {
	c.mu.Lock()
	var f *flight[T]
	if !c.current() {
		f = c.start()
	}
	value, ok = c.last, c.have
	c.mu.Unlock()
	if ok || f == nil {
		return value, ok
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.have
}

// Expire makes the last count too old, so the next read counts again.
func (c *Cache[T]) Expire() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// current reports whether the last count may still be reused; c.mu is held.
func (c *Cache[T]) current() bool {
	return c.have && time.Since(c.at) < max(c.period, 4*c.took)
}

// start returns the count under way, starting one if none is; c.mu is
// held.
func (c *Cache[T]) start() *flight[T] {
	if c.running == nil {
		c.running = &flight[T]{done: make(chan struct{})}
		go c.run(c.running)
	}
	return c.running
}

func (c *Cache[T]) run(f *flight[T]) {
	ctx := context.Background()
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	began := time.Now()
	f.value, f.err = c.count(ctx)
	took := time.Since(began)
	c.mu.Lock()
	if f.err == nil {
		c.last, c.have, c.at, c.took = f.value, true, time.Now(), took
	}
	c.running = nil
	c.mu.Unlock()
	close(f.done)
}
