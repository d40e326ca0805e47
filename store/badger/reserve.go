package badger

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// reservations holds the reservations of sync deliveries of a Badger store
// in memory. A reservation only has to keep the requests of one process
// apart: Badger's directory lock keeps every other process out of the store,
// and a process that dies mid-forward takes its reservations with it, which
// is what an expired reservation stood for anyway (the provider's retry gets
// through at once). So a sync delivery writes its record once, delivered,
// with its payload, instead of a reservation and then the delivered state.
//
// A reservation is a record for every reader (Get, RawBody, List, Counts,
// Purge) and blocks its id and its dedup key like a stored one. What makes
// the check and the reservation atomic is gate, beside Badger's conflict
// detection:
//
//   - An insert that reserves holds gate exclusively while it checks
//     memory, reads Badger from a snapshot taken after that, and adds its
//     reservations. Nothing else reserves meanwhile.
//   - An insert that writes (pending records) holds gate shared while its
//     transaction reads Badger, checks memory and commits, so no
//     reservation of its keys can appear between its check and its commit.
//   - A delivered reservation's record is committed to Badger before the
//     reservation leaves memory, and it leaves under gate shared, so a
//     reserving insert sees either the reservation or a snapshot with the
//     record. A writing insert that read Badger before that commit
//     conflicts with it and retries.
type reservations struct {
	gate sync.RWMutex

	mu      sync.Mutex
	byKey   map[string]*reservation // by record key
	byDedup map[string]*reservation // by dedup key
}

// reservation is one record reserved in memory.
type reservation struct {
	rec  *store.Record // its own copy; Status reserved, ReservedUntil set
	key  string        // record key
	dkey string        // dedup key, or ""
	at   time.Time
	grp  *reservedIngest
}

// reservedIngest is what the reservations of one request share: the raw
// body, and for a batch the body entry their records will refer to once
// delivered.
type reservedIngest struct {
	raw    []byte
	bodyID []byte // nil for a single-event request: the body goes in the payload entry

	mu          sync.Mutex
	keys        [][]byte // record keys of the batch's reservations
	bodyWritten bool
}

func newReservations() *reservations {
	return &reservations{byKey: map[string]*reservation{}, byDedup: map[string]*reservation{}}
}

// reservationChanges are what one insert transaction does to the table once
// it has committed: reservations to add, and expired ones its records took
// the keys of.
type reservationChanges struct {
	grp  *reservedIngest
	add  []*reservation
	drop []*reservation
}

func (c *reservationChanges) reset() { c.add, c.drop = c.add[:0], c.drop[:0] }

// newReservedIngest starts the shared part of the reservations of in.
func newReservedIngest(in *store.Ingest) *reservedIngest {
	g := &reservedIngest{raw: in.RawBody}
	if len(in.Records) > 1 && len(in.RawBody) > 0 {
		g.bodyID = make([]byte, bodyIDLen)
		_, _ = crand.Read(g.bodyID) // never fails (crypto/rand)
	}
	return g
}

// lock takes the gate for an insert: exclusively if it reserves.
func (t *reservations) lock(reserving bool) func() {
	if reserving {
		t.gate.Lock()
		return t.gate.Unlock
	}
	t.gate.RLock()
	return t.gate.RUnlock
}

// holder returns the reservation holding key in m (byKey or byDedup) and
// whether it is live at now. An expired one no longer blocks the key; the
// insert that takes the key drops it.
func (t *reservations) holder(dedup bool, key string, now time.Time) (*reservation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byKey
	if dedup {
		m = t.byDedup
	}
	r := m[key]
	return r, r != nil && r.rec.ReservedUntil.After(now)
}

// apply makes the changes of a committed insert; the caller holds the gate.
func (t *reservations) apply(c *reservationChanges) {
	if len(c.add) == 0 && len(c.drop) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range c.drop {
		t.removeLocked(r)
	}
	for _, r := range c.add {
		t.byKey[r.key] = r
		if r.dkey != "" {
			t.byDedup[r.dkey] = r
		}
	}
	if c.grp != nil && c.grp.bodyID != nil {
		c.grp.mu.Lock()
		for _, r := range c.add {
			c.grp.keys = append(c.grp.keys, []byte(r.key))
		}
		c.grp.mu.Unlock()
	}
}

// removeLocked drops r from the table, and only r: a newer reservation of
// the same key stays.
func (t *reservations) removeLocked(r *reservation) {
	if t.byKey[r.key] == r {
		delete(t.byKey, r.key)
	}
	if r.dkey != "" && t.byDedup[r.dkey] == r {
		delete(t.byDedup, r.dkey)
	}
}

// get returns the reservation of record key, live or not.
func (t *reservations) get(key string) *reservation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[key]
}

// view returns a copy of the reservation's record, safe to hand out.
func (t *reservations) view(r *reservation) *store.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return cloneRecord(r.rec)
}

// retire drops r once its delivered record is committed (see reservations).
func (t *reservations) retire(r *reservation) {
	t.gate.RLock()
	defer t.gate.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(r)
}

// count is the number of reservations held.
func (t *reservations) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// listed is a reservation as List and Purge see it.
type listed struct {
	tkey []byte
	res  *reservation
}

// matching returns copies of the reservations f matches whose listing key
// is below start (nil: any), newest first.
func (t *reservations) matching(f *store.Filter, start []byte) []listed {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []listed
	for _, r := range t.byKey {
		if !matchRecord(f, r.rec) {
			continue
		}
		tk := timeKey(r.rec.ReceivedAt, []byte(r.key))
		if start != nil && bytes.Compare(tk, start) >= 0 {
			continue
		}
		out = append(out, listed{tkey: tk, res: r})
	}
	slices.SortFunc(out, func(a, b listed) int { return bytes.Compare(b.tkey, a.tkey) })
	return out
}

// purge drops up to limit (0: all) reservations f matches and returns how
// many.
func (t *reservations) purge(f *store.Filter, limit int) int {
	n := 0
	for _, l := range t.matching(f, nil) {
		if limit > 0 && n == limit {
			break
		}
		t.mu.Lock()
		if t.byKey[l.res.key] == l.res {
			t.removeLocked(l.res)
			n++
		}
		t.mu.Unlock()
	}
	return n
}

// reservationSweepGrace is how long an expired reservation stays in memory.
// Its request may still be forwarding (a backend slower than the expiry),
// and while the reservation is there its delivery is recorded in full.
const reservationSweepGrace = time.Hour

// sweep drops reservations that expired well before now, so that those of
// requests that never came back do not pile up.
func (t *reservations) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.byKey {
		if r.rec.ReservedUntil.Before(now.Add(-reservationSweepGrace)) {
			t.removeLocked(r)
		}
	}
}

// deliverReserved writes the delivered record of the reservation r, with its
// payload (or its batch's body entry) and its dedup entry, in one
// transaction (shared with concurrent writes, see txnGatherer), durably, then drops the reservation. Nothing of it was on disk
// before: the reservation blocked its keys, so nothing else was either, and
// the record is written blind.
func (b *Store) deliverReserved(ctx context.Context, r *reservation, attempt store.Attempt) error {
	return b.writeReserved(ctx, r, &attempt, store.StatusDelivered)
}

// writeReserved writes the reservation r as a record of status (delivered,
// or released: see Release), with attempt appended when not nil, and drops
// the reservation. A released record holds no dedup key, so it gets no
// dedup entry.
func (b *Store) writeReserved(ctx context.Context, r *reservation, attempt *store.Attempt, status store.Status) error {
	rec := b.resv.view(r)
	switch {
	case status == store.StatusDelivered:
		markDelivered(rec, *attempt)
	default:
		rec.ReservedUntil = time.Time{}
		if sd := syncDelivery(rec); sd != nil {
			if attempt != nil {
				// A sync attempt is the first of its request; the
				// delivery may start with those of the released
				// record it replaced.
				a := *attempt
				a.Number = len(sd.Attempts) + 1
				sd.Attempts = append(sd.Attempts, a)
			}
			settle(sd, store.Decision{Status: status})
		}
	}
	rec.Status = store.Rollup(rec.Deliveries)
	g := r.grp
	size := len(rec.Event) + recordOverhead
	g.mu.Lock()
	writeBody := g.bodyID != nil && !g.bodyWritten
	var bodyKeys [][]byte
	if writeBody {
		bodyKeys = slices.Clone(g.keys)
	}
	g.mu.Unlock()
	if g.bodyID == nil || writeBody {
		size += len(g.raw)
	}
	if err := b.space.allow(size, false); err != nil {
		return err
	}
	key := []byte(r.key)
	gen := b.cache.generation()
	now := b.opts.Now()
	op := &gatherOp{ctx: ctx, key: r.key, size: size, durable: true}
	op.fn = func(txn *badger.Txn) error {
		kind, body := bodyPayload, g.raw
		if g.bodyID != nil {
			kind, body = bodyRef, g.bodyID
			if writeBody {
				if err := txn.Set(bodyKey(g.bodyID), encodeBodyValue(now, bodyKeys, g.raw)); err != nil {
					return err
				}
			}
		}
		for i := range rec.Deliveries {
			rec.Deliveries[i].Sequence = 0 // the transaction may run again
		}
		if err := assignSequences(txn, rec); err != nil {
			return err
		}
		if err := b.writeRecord(txn, key, nil, rec, kind, body, now); err != nil {
			return err
		}
		if rec.DedupKey != "" && status == store.StatusDelivered {
			// The window runs from the reservation, as from an insert.
			return writeDedup(txn, rec, r.at)
		}
		return nil
	}
	if err := b.gather.write(op); err != nil {
		return fmt.Errorf("writing the %s record: %w", status, err)
	}
	if writeBody {
		g.mu.Lock()
		g.bodyWritten = true
		g.mu.Unlock()
	}
	b.resv.retire(r)
	b.cache.put(r.key, gen, rec.Status, expiresAt(rec, now), 0, true)
	return nil
}
