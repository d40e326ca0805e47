package console

import (
	"context"
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/countcache"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// counted is one store's counts as the overview shows them.
type counted struct {
	counts   *ops.CountsResponse
	bySource []ops.SourceCount
	scanned  int
	complete bool
	at       time.Time
}

// overviewCounts shares the overview's counts among the open pages, one
// countcache.Cache per store: N tabs each refreshing every few seconds must
// not become N scans. A count is reused for a little less than the refresh
// period, so each refresh of one page sees a new count; loading the page
// counts afresh.
type overviewCounts struct {
	refresh time.Duration
	mu      sync.Mutex
	stores  map[string]*storeCounts
}

// storeCounts is the cache of the store loaded under one name; a reload that
// opens another store under the name gets a new one.
type storeCounts struct {
	db    store.Store
	cache *countcache.Cache[*counted]
}

func newOverviewCounts(refresh time.Duration) *overviewCounts {
	return &overviewCounts{refresh: refresh, stores: map[string]*storeCounts{}}
}

// get returns the store's counts, reused unless fresh is set or they are
// older than the period.
func (c *overviewCounts) get(ctx context.Context, t ops.Target, fresh bool) (*counted, error) {
	c.mu.Lock()
	e := c.stores[t.Name]
	if e == nil || e.db != t.Store {
		e = &storeCounts{db: t.Store, cache: countcache.New(c.refresh*9/10, 0, func(ctx context.Context) (*counted, error) {
			return count(ctx, t)
		})}
		c.stores[t.Name] = e
	}
	c.mu.Unlock()
	return e.cache.Get(ctx, fresh)
}

// count counts a store for the overview: per status, and per source over
// the newest sourceScan events.
func count(ctx context.Context, t ops.Target) (*counted, error) {
	counts, err := ops.Counts(ctx, t)
	if err != nil {
		return nil, err
	}
	rows, scanned, complete, err := ops.CountBySource(ctx, t, sourceScan)
	if err != nil {
		return nil, err
	}
	return &counted{counts: counts, bySource: rows, scanned: scanned, complete: complete, at: time.Now()}, nil
}
