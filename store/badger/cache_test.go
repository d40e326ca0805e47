package badger

import (
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// A refresh that raced a deletion of another key is dropped; the state it
// would have replaced must go too, or a pending entry (which never expires)
// would outlive its record's retention.
func TestDroppedRefreshForgetsTheKey(t *testing.T) {
	c := newDedupCache(16)
	now := time.Now()
	c.put("k", c.generation(), store.StatusPending, 0, 1, true)
	gen := c.generation()
	c.deleted("other")
	c.put("k", gen, store.StatusDelivered, uint64(now.Add(time.Hour).Unix()), 2, true)
	if _, _, ok := c.present("k", now); ok {
		t.Fatal("the pending entry survived a dropped refresh")
	}
}
