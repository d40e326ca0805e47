package badger

import (
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// leaseTable holds the delivery leases of a Badger store in memory.
//
// A lease only has to keep two owners of one open database apart: the
// delivery engines of the configurations that run side by side during a
// reload, which share one *Store. Another process cannot open the directory
// at all (Badger's lock), and when this process dies its leases die with it,
// which is what an expired lease stood for anyway: the claimed events are due
// again at once after a restart. Persisting leases would rewrite every record
// once more per delivery for nothing.
type leaseTable struct {
	mu sync.Mutex
	m  map[string]lease // by record key
}

type lease struct {
	owner string
	until time.Time
}

func newLeaseTable() *leaseTable { return &leaseTable{m: make(map[string]lease)} }

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

// overlay sets r's lease fields from the table: the record as a transition
// (and the lease's owner) must see it; readers see it through view. An
// expired lease still shows, as a persisted one did, until another owner
// takes the record.
func (t *leaseTable) overlay(key string, r *store.Record) {
	t.mu.Lock()
	l, ok := t.m[key]
	t.mu.Unlock()
	if ok {
		r.LeaseOwner, r.LeaseUntil = l.owner, l.until
	} else {
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
	}
}

// view sets r's lease fields as a reader (Get, List) sees them: a delivered
// or dead record shows no lease. The owner that settled it ends its lease
// only once its write is committed and synced (apply, after the transition:
// ending it before the commit would let another owner claim a record about
// to be delivered), so for that while the table still holds a lease that
// the stored state has already left behind. A lease held on a record
// delivered by a replay stays in the table, for its owner's RecordAttempt to
// find (change overlays it), but means nothing to a reader either.
func (t *leaseTable) view(key string, r *store.Record) {
	if r.Status == store.StatusDelivered || r.Status == store.StatusDead {
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return
	}
	t.overlay(key, r)
}

// apply makes the table follow an update that changed r's lease fields from
// before: cleared fields drop the lease, new ones set it. It only touches
// the lease the update saw, so a late update by an owner whose lease was
// taken over leaves the new owner's lease alone.
func (t *leaseTable) apply(key string, before lease, r *store.Record) {
	after := lease{owner: r.LeaseOwner, until: r.LeaseUntil}
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
func (t *leaseTable) drop(key string, l lease) { t.apply(key, l, &store.Record{}) }

// persisted is r as it is written to disk: without its delivery lease.
func persisted(r *store.Record) *store.Record {
	if r.LeaseOwner == "" && r.LeaseUntil.IsZero() {
		return r
	}
	p := *r
	p.LeaseOwner, p.LeaseUntil = "", time.Time{}
	return &p
}

// leaseSweepGrace is how long an expired lease stays in the table. Its
// owner may still be recording a late attempt, and while the lease shows it
// knows the event is still its own (see overlay).
const leaseSweepGrace = time.Hour

// sweep drops leases that ran out well before now, so that those of events
// whose owner never came back do not pile up.
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
