package countcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// counter counts how often it was asked; each count returns that number.
type counter struct {
	n    atomic.Int64
	gate chan struct{} // if set, a count waits for a value on it
	fail atomic.Bool
}

func (c *counter) count(ctx context.Context) (int, error) {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	n := int(c.n.Add(1))
	if c.fail.Load() {
		return 0, errors.New("count failed")
	}
	return n, nil
}

func TestGetReusesWithinPeriodAndCountsAfreshOnAsk(t *testing.T) {
	var c counter
	cache := New(time.Hour, 0, c.count)
	ctx := context.Background()
	for range 3 {
		if v, err := cache.Get(ctx, false); err != nil || v != 1 {
			t.Fatalf("Get = %d, %v; want the first count", v, err)
		}
	}
	if v, _ := cache.Get(ctx, true); v != 2 {
		t.Fatalf("fresh Get = %d, want a second count", v)
	}
	cache.Expire()
	if v, _ := cache.Get(ctx, false); v != 3 {
		t.Fatalf("Get after Expire = %d, want a third count", v)
	}
}

func TestConcurrentReadersShareOneCount(t *testing.T) {
	c := counter{gate: make(chan struct{})}
	cache := New(time.Hour, 0, c.count)
	var wg sync.WaitGroup
	got := make([]int, 5)
	for i := range got {
		wg.Go(func() {
			v, err := cache.Get(context.Background(), true)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	// Wait until every reader waits on the count under way, then let it
	// finish.
	testwait.For(t, "five readers on one count", func() bool {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		return cache.running != nil && cache.running.readers == len(got)
	})
	c.gate <- struct{}{}
	close(c.gate) // a later count, if any, runs freely and would show up
	wg.Wait()
	for _, v := range got {
		if v != 1 {
			t.Fatalf("readers got %v, want the one count for all", got)
		}
	}
	if n := c.n.Load(); n != 1 {
		t.Fatalf("%d counts for 5 readers", n)
	}
}

func TestPeekAnswersAtOnceAndRefreshesInBackground(t *testing.T) {
	var c counter
	cache := New(time.Hour, 0, c.count)
	if v, ok := cache.Peek(time.Minute); !ok || v != 1 {
		t.Fatalf("first Peek = %d, %v; want it to wait for the first count", v, ok)
	}
	c.gate = make(chan struct{})
	cache.Expire()
	if v, ok := cache.Peek(time.Minute); !ok || v != 1 {
		t.Fatalf("stale Peek = %d, %v; want the old count at once", v, ok)
	}
	close(c.gate)
	testwait.For(t, "the background count", func() bool {
		v, _ := cache.Peek(time.Minute)
		return v == 2
	})
}

func TestFailedCountKeepsThePreviousOne(t *testing.T) {
	var c counter
	cache := New(time.Hour, 0, c.count)
	ctx := context.Background()
	if v, _ := cache.Get(ctx, false); v != 1 {
		t.Fatalf("Get = %d", v)
	}
	c.fail.Store(true)
	if _, err := cache.Get(ctx, true); err == nil {
		t.Fatal("a failed count returned no error")
	}
	if v, err := cache.Get(ctx, false); err != nil || v != 1 {
		t.Fatalf("after a failure Get = %d, %v; want the previous count", v, err)
	}
}

func TestSlowCountIsReusedLonger(t *testing.T) {
	var c counter
	cache := New(time.Nanosecond, 0, c.count)
	cache.Get(context.Background(), false)
	cache.mu.Lock()
	cache.took = time.Hour // as if the count had taken an hour
	cache.mu.Unlock()
	if v, _ := cache.Get(context.Background(), false); v != 1 {
		t.Fatalf("Get = %d; a count that took an hour is reused for four", v)
	}
}
