package badger

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// dedupCache remembers keys known to be present so that a hot duplicate is
// answered without a Badger read. A wrong "present" answer would drop a new
// event, so the cache is built to only ever err towards "ask Badger":
//
//   - States are cached with the Badger version they were read at; an older
//     version never replaces a newer one, so two racing updates cannot leave
//     the older state behind. A fresh insert is cached as it was written, at
//     version 0, below any state read back later.
//   - Entries carry the record's Badger expiry, so a delivered record that
//     expired is a miss.
//   - Entries remember whether the write was synced when they were cached,
//     so a durable caller is not told "duplicate" about a copy that might not
//     survive a power cut before the next sync.
//   - Reservations are never cached (they can be released or overwritten).
//     A released record may be, but Insert never takes it for a duplicate:
//     it holds no key.
//   - Deletions (Purge) bump a generation under the cache lock after
//     they commit; an add whose read-back started before a deletion's bump is
//     dropped, so a deletion can never be undone by a late add.
type dedupCache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, cacheEntry]
	gen uint64 // bumped after each committed deletion
}

type cacheEntry struct {
	status    store.Status
	expiresAt uint64 // Badger ExpiresAt, unix seconds; 0 = no expiry
	version   uint64 // Badger commit version of the state cached
	synced    bool   // known to be on disk
}

func newDedupCache(size int) *dedupCache {
	if size <= 0 {
		return nil
	}
	l, _ := simplelru.NewLRU[string, cacheEntry](size, nil) // only fails on size <= 0
	return &dedupCache{lru: l}
}

// present reports whether key is cached as present now, its status, and
// whether that state is known to be synced to disk.
func (c *dedupCache) present(key string, now time.Time) (st store.Status, synced, ok bool) {
	if c == nil {
		return "", false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	if !ok {
		return "", false, false
	}
	// Badger treats an entry as expired once ExpiresAt <= now (seconds).
	if e.expiresAt != 0 && e.expiresAt <= uint64(now.Unix()) {
		c.lru.Remove(key)
		return "", false, false
	}
	return e.status, e.synced, true
}

// generation is read before the snapshot whose state is then offered to put.
func (c *dedupCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put records the state of key read at version in a snapshot taken after
// generation gen was read; synced tells whether a sync ran after that
// snapshot. A reservation, or an empty status (absent), removes.
func (c *dedupCache) put(key string, gen uint64, status store.Status, expiresAt, version uint64, synced bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if status == "" || status == store.StatusReserved {
		c.lru.Remove(key)
		return
	}
	if gen != c.gen {
		// The state read may predate a deletion; so may an entry already
		// here, which would otherwise outlive the state it describes
		// (a pending entry never expires). Forget the key: Badger knows.
		c.lru.Remove(key)
		return
	}
	if old, ok := c.lru.Peek(key); ok {
		if old.version > version {
			return
		}
		synced = synced || (old.version == version && old.synced)
	}
	c.lru.Add(key, cacheEntry{status: status, expiresAt: expiresAt, version: version, synced: synced})
}

// deleted must be called after a deletion of keys has committed.
func (c *dedupCache) deleted(keys ...string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, k := range keys {
		c.lru.Remove(k)
	}
}
