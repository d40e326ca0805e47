package badger

import (
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// leaseTable holds the delivery leases of a Badger store in memory, one per
// (record, destination).
//
// A lease only has to keep two owners of one open database apart: the
// delivery engines of the configurations that run side by side during a
// reload, which share one *Store. Another process cannot open the directory
// at all (Badger's lock), and when this process dies its leases die with it,
// which is what an expired lease stood for anyway: the claimed deliveries
// are due again at once after a restart. Persisting leases would rewrite
// every record once more per delivery for nothing.
type leaseTable struct {
	mu sync.Mutex
	m  map[string]lease // by leaseKey
}

type lease struct {
	owner string
	until time.Time
}

func newLeaseTable() *leaseTable { return &leaseTable{m: make(map[string]lease)} }

// leaseKey keys the lease on the delivery to destination of the record
// under recKey. Destinations have no NUL, so the pair is unambiguous.
func leaseKey(recKey, destination string) string { return destination + "\x00" + recKey }

// take leases key to owner until until if no other lease holds it at now.
func (t *leaseTable) take(key, owner string, now, until time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.m[key]; ok && l.until.After(now) {
		return false
	}
	t.m[key] = lease{owner: owner, until: until}
	return true
}

// held reports whether a lease on key is in force at now.
func (t *leaseTable) held(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[key]
	return ok && l.until.After(now)
}

// overlay sets the lease fields of r's deliveries from the table: the
// record as a transition (and the lease's owner) must see it; readers see
// it through view. An expired lease still shows, as a persisted one did,
// until another owner takes the delivery.
func (t *leaseTable) overlay(recKey string, r *store.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range r.Deliveries {
		d := &r.Deliveries[i]
		if l, ok := t.m[leaseKey(recKey, d.Destination)]; ok {
			d.LeaseOwner, d.LeaseUntil = l.owner, l.until
		} else {
			d.LeaseOwner, d.LeaseUntil = "", time.Time{}
		}
	}
}

// leases returns the leases of r's deliveries as overlay set them, by
// destination.
func leasesOf(r *store.Record) map[string]lease {
	m := make(map[string]lease, len(r.Deliveries))
	for i := range r.Deliveries {
		m[r.Deliveries[i].Destination] = lease{owner: r.Deliveries[i].LeaseOwner, until: r.Deliveries[i].LeaseUntil}
	}
	return m
}

// view sets the lease fields of r's deliveries as a reader (Get, List) sees
// them: a delivered, dead or skipped delivery shows no lease. The owner
// that settled it ends its lease only once its write is committed and
// synced (apply, after the transition: ending it before the commit would
// let another owner claim a delivery about to be delivered), so for that
// while the table still holds a lease that the stored state has already
// left behind. A lease held on a delivery delivered by a replay stays in
// the table, for its owner's RecordAttempt to find (change overlays it),
// but means nothing to a reader either.
func (t *leaseTable) view(recKey string, r *store.Record) {
	t.overlay(recKey, r)
	for i := range r.Deliveries {
		d := &r.Deliveries[i]
		if !d.Claimable() {
			d.LeaseOwner, d.LeaseUntil = "", time.Time{}
		}
	}
}

// apply makes the table follow an update that changed the lease fields of
// r's deliveries from before (by destination): cleared fields drop the
// lease, new ones set it. It only touches the leases the update saw, so a
// late update by an owner whose lease was taken over leaves the new
// owner's lease alone.
func (t *leaseTable) apply(recKey string, before map[string]lease, r *store.Record) {
	for i := range r.Deliveries {
		d := &r.Deliveries[i]
		t.applyOne(leaseKey(recKey, d.Destination), before[d.Destination], lease{owner: d.LeaseOwner, until: d.LeaseUntil})
	}
}

func (t *leaseTable) applyOne(key string, before, after lease) {
	if after == before {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[key]; ok && cur != before {
		return
	}
	if after.owner == "" {
		delete(t.m, key)
		return
	}
	t.m[key] = after
}

// release drops owner's lease on key, if owner holds it.
func (t *leaseTable) release(key, owner string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.m[key]; ok && l.owner == owner {
		delete(t.m, key)
	}
}

// drop gives up l on key, if key still has it.
func (t *leaseTable) drop(key string, l lease) { t.applyOne(key, l, lease{}) }

// persisted is r as it is written to disk: without its deliveries' leases.
func persisted(r *store.Record) *store.Record {
	leased := false
	for i := range r.Deliveries {
		leased = leased || r.Deliveries[i].LeaseOwner != "" || !r.Deliveries[i].LeaseUntil.IsZero()
	}
	if !leased {
		return r
	}
	p := *r
	p.Deliveries = make([]store.Delivery, len(r.Deliveries))
	for i, d := range r.Deliveries {
		d.LeaseOwner, d.LeaseUntil = "", time.Time{}
		p.Deliveries[i] = d
	}
	return &p
}

// leaseSweepGrace is how long an expired lease stays in the table. Its
// owner may still be recording a late attempt, and while the lease shows it
// knows the delivery is still its own (see overlay).
const leaseSweepGrace = time.Hour

// sweep drops leases that ran out well before now, so that those of
// deliveries whose owner never came back do not pile up.
func (t *leaseTable) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, l := range t.m {
		if l.until.Before(now.Add(-leaseSweepGrace)) {
			delete(t.m, k)
		}
	}
}

// get returns the lease on key, if any.
func (t *leaseTable) get(key string) (lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[key]
	return l, ok
}

// cloneRecord copies r deeply enough to hand out: its deliveries and their
// attempts, and its headers.
func cloneRecord(r *store.Record) *store.Record {
	c := *r
	c.Deliveries = make([]store.Delivery, len(r.Deliveries))
	for i, d := range r.Deliveries {
		d.Attempts = append([]store.Attempt(nil), d.Attempts...)
		c.Deliveries[i] = d
	}
	c.Headers = r.Headers.Clone()
	return &c
}
