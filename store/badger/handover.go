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

// handover passes just-stored deliveries to Claim in memory: each unordered
// delivery of an event inserted pending and due at once is queued under its
// destination with its record as written, and Claim takes it from the
// queue, with its lease, without scanning the due index or reading the
// record back. The due index stays the truth: it is what retries, laned
// deliveries (whose turn only the lane index knows) and recovery after a
// restart are claimed from, and a delivery the queue dropped (full, or
// changed since) is found there.
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
	queues   map[string][]string    // destination → record keys, oldest first
	recs     map[string]*handedOver // record key → the record as written
	expected map[string]struct{}    // keys being inserted, untouched so far
}

// handedOver is a queued record and the destinations it still waits in
// the queues of.
type handedOver struct {
	rec   *store.Record
	dests map[string]bool
}

func newHandover() *handover {
	return &handover{queues: map[string][]string{}, recs: map[string]*handedOver{}, expected: map[string]struct{}{}}
}

// expect is called before the commit that may insert key.
func (h *handover) expect(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expected[key] = struct{}{}
}

// offer queues the unordered pending deliveries of r, just written under
// key, if key was not touched since expect; either way it ends the
// expectation.
func (h *handover) offer(key string, r *store.Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.expected[key]; !ok {
		return
	}
	delete(h.expected, key)
	if r == nil {
		return
	}
	var e *handedOver
	for i := range r.Deliveries {
		d := &r.Deliveries[i]
		if d.Status != store.StatusPending || !d.NextAttemptAt.IsZero() || d.Lane != "" {
			continue
		}
		q := h.queues[d.Destination]
		if len(q) >= handoverMax {
			continue
		}
		if e == nil {
			e = &handedOver{rec: copyDeliveries(r), dests: map[string]bool{}}
		}
		e.dests[d.Destination] = true
		h.queues[d.Destination] = append(q, key)
	}
	if e != nil {
		h.recs[key] = e
	}
}

// forget must be called before a state change or deletion of key reads the
// record.
func (h *handover) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recs, key) // its queue entries are skipped when reached
	delete(h.expected, key)
}

// take hands out up to limit queued deliveries to destinations whose lease
// take grants (given the lease key), oldest first per destination, each
// with its record and the lease set.
func (h *handover) take(destinations []string, limit int, take func(key string) (owner string, until time.Time, ok bool)) []store.Claimed {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []store.Claimed
	for _, dest := range destinations {
		q := h.queues[dest]
		n := 0
		for n < len(q) && len(out) < limit {
			key := q[n]
			n++
			e := h.recs[key]
			if e == nil || !e.dests[dest] {
				continue // changed since it was written
			}
			delete(e.dests, dest)
			if len(e.dests) == 0 {
				delete(h.recs, key)
			}
			owner, until, ok := take(leaseKey(key, dest))
			if !ok {
				continue // another owner claimed it from the scan
			}
			c := copyDeliveries(e.rec)
			for i := range c.Deliveries {
				d := &c.Deliveries[i]
				d.LeaseOwner, d.LeaseUntil = "", time.Time{}
				if d.Destination == dest {
					d.LeaseOwner, d.LeaseUntil = owner, until
				}
			}
			out = append(out, store.Claimed{Record: c, Destination: dest})
		}
		if n == len(q) {
			delete(h.queues, dest)
		} else {
			h.queues[dest] = q[n:]
		}
	}
	return out
}

// copyDeliveries is a copy of r with deliveries of its own (their attempts
// too), sharing the rest, as the insert left it and nobody changes it.
func copyDeliveries(r *store.Record) *store.Record {
	c := *r
	c.Deliveries = make([]store.Delivery, len(r.Deliveries))
	for i, d := range r.Deliveries {
		d.Attempts = slices.Clone(d.Attempts)
		c.Deliveries[i] = d
	}
	return &c
}
