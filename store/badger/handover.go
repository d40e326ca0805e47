package badger

import (
	"slices"
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// handoverMax bounds the events waiting in the handover per destination (about
// 12 MB with 12 KB events); what does not fit is found by the due scan.
const handoverMax = 1024

// handover passes just-stored events to Claim in memory: an event inserted
// pending and due at once is queued with its record as written, and Claim
// takes it from the queue, with its lease, without scanning the due index
// or reading the record back. The due index stays the truth: it is what
// retries and recovery after a restart are claimed from, and an event the
// queue dropped (full, or changed since) is found there.
//
// A queued record is only handed out as long as nothing else touched it
// since it was written: every state change and deletion forgets the key
// before it reads the record, so a claim after that falls back to the
// scan, which reads what is stored. Insert expects a key before its commit
// and offers it after (and after the sync), so that a scan that claimed and
// delivered the event in between (its change forgot the expectation) cannot
// be followed by a stale copy. A change that starts after a claim took the
// lease is the same race as with a claim that read the record.
type handover struct {
	mu       sync.Mutex
	queues   map[string][]string      // destination → record keys, oldest first
	recs     map[string]*store.Record // record key → the record as written
	expected map[string]struct{}      // keys being inserted, untouched so far
}

func newHandover() *handover {
	return &handover{queues: map[string][]string{}, recs: map[string]*store.Record{}, expected: map[string]struct{}{}}
}

// expect is called before the commit that may insert key.
func (h *handover) expect(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expected[key] = struct{}{}
}

// offer queues r, just written under key, if it is due at once and key
// was not touched since expect; either way it ends the expectation.
func (h *handover) offer(key string, r *store.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.expected[key]; !ok {
		return
	}
	delete(h.expected, key)
	if r == nil || r.Status != store.StatusPending || !r.NextAttemptAt.IsZero() {
		return
	}
	q := h.queues[r.Destination]
	if len(q) >= handoverMax {
		return
	}
	c := *r
	c.LeaseOwner, c.LeaseUntil = "", time.Time{}
	h.queues[r.Destination] = append(q, key)
	h.recs[key] = &c
}

// forget must be called before a state change or deletion of key reads the
// record.
func (h *handover) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recs, key) // its queue entry is skipped when reached
	delete(h.expected, key)
}

// take hands out up to limit queued records of destinations whose lease
// take grants, oldest first per destination, each with the lease set.
func (h *handover) take(destinations []string, limit int, take func(key string) (owner string, until time.Time, ok bool)) []*store.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*store.Record
	for _, dest := range destinations {
		q := h.queues[dest]
		n := 0
		for n < len(q) && len(out) < limit {
			key := q[n]
			n++
			r := h.recs[key]
			if r == nil {
				continue // changed since it was written
			}
			delete(h.recs, key)
			owner, until, ok := take(key)
			if !ok {
				continue // another owner claimed it from the scan
			}
			c := *r
			c.Attempts = slices.Clone(r.Attempts)
			c.LeaseOwner, c.LeaseUntil = owner, until
			out = append(out, &c)
		}
		if n == len(q) {
			delete(h.queues, dest)
		} else {
			h.queues[dest] = q[n:]
		}
	}
	return out
}
