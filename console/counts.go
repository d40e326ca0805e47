package console

import (
	"context"
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

// counted is one store's counts as the overview shows them.
type counted struct {
	counts   *ops.CountsResponse
	bySource []ops.SourceCount
	scanned  int
	complete bool
	at       time.Time
}

// countsCache shares the overview's counts among the open pages. Counting
// scans the store (about a second per million events for the statuses): N
// tabs each refreshing every few seconds must not become N scans, and on a
// store so big that a count takes longer than the refresh period, counts
// are reused for four times as long as they took, so the console never
// keeps a core busy counting. Loading the page counts afresh: that is an
// operator asking, not a timer.
type countsCache struct {
	refresh time.Duration
	mu      sync.Mutex
	stores  map[string]*countsEntry
}

type countsEntry struct {
	mu   sync.Mutex // held while counting, so concurrent pages wait for one count
	last *counted
	took time.Duration
}

func newCountsCache(refresh time.Duration) *countsCache {
	return &countsCache{refresh: refresh, stores: map[string]*countsEntry{}}
}

// get returns the store's counts, reused unless fresh is set or they are
// older than the period.
func (c *countsCache) get(ctx context.Context, t ops.Target, fresh bool) (*counted, error) {
	c.mu.Lock()
	e := c.stores[t.Name]
	if e == nil {
		e = &countsEntry{}
		c.stores[t.Name] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	// Fresh for a little less than the period, so each refresh of one page
	// sees a new count.
	ttl := max(c.refresh*9/10, 4*e.took)
	if !fresh && e.last != nil && time.Since(e.last.at) < ttl {
		return e.last, nil
	}
	start := time.Now()
	counts, err := ops.Counts(ctx, t)
	if err != nil {
		return nil, err
	}
	rows, scanned, complete, err := ops.CountBySource(ctx, t, sourceScan)
	if err != nil {
		return nil, err
	}
	e.took = time.Since(start)
	e.last = &counted{counts: counts, bySource: rows, scanned: scanned, complete: complete, at: time.Now()}
	return e.last, nil
}
