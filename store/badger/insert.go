package badger

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// insertOutcome is what one attempt learned about one record.
type insertOutcome struct {
	inserted bool
	existing store.Status
	// existingID is the record found present: the record's own id, or
	// the holder of its dedup key.
	existingID string
	// carried are the attempts of a released record the insert replaces,
	// by destination.
	carried map[string][]store.Attempt
	// Cache facts for a record found present under its own id.
	version, expiresAt uint64
}

// heldBy is the record holding a dedup key.
type heldBy struct {
	id     string
	status store.Status
}

// dedupHolder looks up who holds the dedup key of r at now in Badger. The
// key is held while its window runs; a key whose record is gone (purged,
// expired) is free. Reservations, which live in memory, hold their dedup
// keys there (see reservations).
func dedupHolder(txn *badger.Txn, r *store.Record, now time.Time) (*heldBy, error) {
	item, err := txn.Get(dedupKey(r.Source, r.DedupKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := itemValueCopy(item)
	if err != nil {
		return nil, err
	}
	until, id, err := decodeDedupValue(v)
	if err != nil {
		return nil, err
	}
	ri, err := txn.Get(recordKey(r.Source, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if now.Before(until) {
		return &heldBy{id: id, status: metaStatus[ri.UserMeta()]}, nil
	}
	return nil, nil
}

// writeDedup makes r the holder of its dedup key for its window from now. A
// reservation's entry lives until the reservation expires, so that a live
// reservation is still found when it outlasts the window.
func writeDedup(txn *badger.Txn, r *store.Record, now time.Time) error {
	until := now.Add(r.DedupWindow)
	life := until
	if r.Status == store.StatusReserved && r.ReservedUntil.After(life) {
		life = r.ReservedUntil
	}
	e := badger.NewEntry(dedupKey(r.Source, r.DedupKey), encodeDedupValue(until, r.ID))
	// Badger drops an entry once ExpiresAt <= now in whole seconds.
	e.ExpiresAt = uint64(life.Unix()) + 1
	return txn.SetEntry(e)
}

// Insert implements store.Store. Records are validated first: each needs a source
// without NUL bytes and a non-empty id. Insert fills in defaults on the
// caller's records: Status pending when empty, ReceivedAt now when zero,
// BatchSize the number of records when zero, and ReservedUntil now plus the
// reservation expiry for a StatusReserved record. A stored reservation that
// has expired counts as absent and is overwritten. A record with a DedupKey
// is also a duplicate while another record holds that key (see
// Record.DedupKey). Two records of one Ingest with the same id or the same
// dedup key are stored once; the second reports a duplicate.
//
// A durable Insert that finds duplicates in Badger still waits for a sync,
// because the first copy may belong to a concurrent writer whose sync is not
// done yet: answering "duplicate" for an event that is then lost would drop
// it for good. Once the commit is made, Insert no longer honours ctx.
//
// A batch is worked through in chunks of maxTxnRecords, each in a
// transaction of its own (each record still atomically insert-if-absent),
// so that the keys, the outcomes and Badger's pending writes of only one
// chunk exist at a time.
func (b *Store) Insert(ctx context.Context, in *store.Ingest, durable bool) ([]store.InsertResult, error) {
	now := b.opts.Now()
	if err := store.PrepareInsert(in, now); err != nil {
		return nil, err
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()

	n := len(in.Records)
	size := len(in.RawBody)
	for _, r := range in.Records {
		size += len(r.Event) + recordOverhead
	}
	ins := &inserter{b: b, in: in, now: now, res: make([]store.InsertResult, n), payload: n == 1, durable: durable}
	if n > 1 && len(in.RawBody) > 0 {
		ins.bodyID = make([]byte, bodyIDLen)
		_, _ = crand.Read(ins.bodyID) // never fails (crypto/rand)
	}
	defer ins.endExpectations()
	spaceChecked, bodyWritten := false, false
	chunk := maxTxnRecords
	for lo := 0; lo < n; {
		hi := min(lo+chunk, n)
		c := ins.prepare(lo, hi)
		if len(c.todo) > 0 && !spaceChecked {
			if err := b.space.allow(size, true); err != nil {
				return nil, fmt.Errorf("insert: %w", err)
			}
			spaceChecked = true
		}
		if len(c.todo) > 0 && !bodyWritten && (lo > 0 || hi < n) {
			// More than one transaction: the shared body goes first,
			// naming every record of the batch.
			if err := ins.writeSharedBody(ctx); err != nil {
				return nil, fmt.Errorf("insert: %w", err)
			}
			bodyWritten = true
		}
		err := ins.run(ctx, c, hi == n && lo == 0)
		if errors.Is(err, badger.ErrTxnTooBig) && hi-lo > 1 {
			chunk = max((hi-lo)/2, 1)
			ins.unexpect(c)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
		ins.finish(c, hi == n)
		lo = hi
	}
	if durable && !ins.synced && (ins.wentThrough || ins.needSync) {
		// Whether records were inserted or found, what went through
		// Badger needs a sync either way, unless the gathered write
		// waited for one.
		if err := b.durable(); err != nil {
			return nil, fmt.Errorf("insert: %w", err)
		}
	}
	ins.publish(durable)
	return ins.res, nil
}

// maxTxnRecords bounds the records of one insert transaction. A loyalty
// batch of tens of thousands of items in one transaction would be refused
// by Badger as too big only after every record was encoded, and would hold
// all of them in memory at once; chunks keep the memory of a batch a small
// multiple of its body.
const maxTxnRecords = 256

// inserter is the state of one Insert across its chunks.
type inserter struct {
	b       *Store
	in      *store.Ingest
	now     time.Time
	res     []store.InsertResult
	payload bool   // a single-event request: its body goes in the payload entry
	bodyID  []byte // a batch's shared body
	durable bool
	synced  bool // the gathered write waited for its sync

	grp         *reservedIngest // the reservations made, if any
	wentThrough bool            // some record was looked up in Badger
	needSync    bool            // a duplicate was answered from a cached, unsynced write

	// expected are the records offered to the handover once synced, at
	// most handoverMax (the handover holds no more per source; the due
	// scan finds the rest).
	expected []int
	// last is the final chunk, whose cache entries are put once synced.
	last *insertChunk
}

// insertChunk is the records [lo, hi) of an Insert.
type insertChunk struct {
	lo, hi int
	keys   [][]byte // by index - lo
	todo   []int    // indexes to look up in Badger
	dupOf  map[int]int
	out    map[int]insertOutcome
	gen    uint64
}

func (c *insertChunk) key(i int) []byte { return c.keys[i-c.lo] }

// prepare computes the chunk's keys and answers what the cache and the
// chunk itself can: cached duplicates and repeats within the chunk. A
// repeat of a record of an earlier chunk is found in Badger (or among the
// reservations) like any duplicate.
func (ins *inserter) prepare(lo, hi int) *insertChunk {
	c := &insertChunk{lo: lo, hi: hi, keys: make([][]byte, hi-lo)}
	var seen map[string]int
	if hi-lo > 1 {
		seen = make(map[string]int, hi-lo)
		c.dupOf = make(map[int]int)
	}
	for i := lo; i < hi; i++ {
		r := ins.in.Records[i]
		k := recordKey(r.Source, r.ID)
		c.keys[i-lo] = k
		if seen != nil {
			if j, ok := seen[string(k)]; ok {
				c.dupOf[i] = j
				continue
			}
			if r.DedupKey != "" {
				dk := string(dedupKey(r.Source, r.DedupKey))
				if j, ok := seen[dk]; ok {
					c.dupOf[i] = j
					continue
				}
				seen[dk] = i
			}
			seen[string(k)] = i
		}
		if st, synced, ok := ins.b.cache.present(string(k), ins.now); ok && st != store.StatusReleased {
			ins.res[i] = store.InsertResult{Existing: st, ExistingID: r.ID}
			ins.needSync = ins.needSync || !synced
			continue
		}
		c.todo = append(c.todo, i)
	}
	for _, i := range c.todo {
		if len(ins.expected) == handoverMax {
			break
		}
		ins.b.hand.expect(string(c.key(i)))
		ins.expected = append(ins.expected, i)
	}
	return c
}

// unexpect ends the expectations of a chunk that is being split.
func (ins *inserter) unexpect(c *insertChunk) {
	keep := ins.expected[:0]
	for _, i := range ins.expected {
		if i >= c.lo && i < c.hi {
			ins.b.hand.offer(string(c.key(i)), nil)
			continue
		}
		keep = append(keep, i)
	}
	ins.expected = keep
}

// writeSharedBody writes the batch's body entry, naming every record.
func (ins *inserter) writeSharedBody(ctx context.Context) error {
	if ins.bodyID == nil {
		return nil
	}
	writing := false
	for _, r := range ins.in.Records {
		writing = writing || r.Status != store.StatusReserved
	}
	if !writing {
		return nil // reservations write their own when delivered
	}
	keys := make([][]byte, len(ins.in.Records))
	for i, r := range ins.in.Records {
		keys[i] = recordKey(r.Source, r.ID)
	}
	err := ins.b.update(ctx, func(txn *badger.Txn) error {
		return txn.Set(bodyKey(ins.bodyID), encodeBodyValue(ins.now, keys, ins.in.RawBody))
	})
	if err != nil {
		return fmt.Errorf("writing shared body: %w", err)
	}
	return nil
}

// run is the chunk's transaction, retried on conflict, and the reservations
// it made, all under the reservation gate. withBody writes the shared body
// in the same transaction (the batch fits in one).
func (ins *inserter) run(ctx context.Context, c *insertChunk, withBody bool) error {
	if len(c.todo) == 0 {
		return nil
	}
	reserving := false
	for _, i := range c.todo {
		reserving = reserving || ins.in.Records[i].Status == store.StatusReserved
	}
	ch := &reservationChanges{}
	if reserving {
		if ins.grp == nil {
			ins.grp = newReservedIngest(ins.in)
		}
		ch.grp = ins.grp
	}
	c.out = make(map[int]insertOutcome, len(c.todo))
	c.gen = ins.b.cache.generation()
	ins.wentThrough = true
	fn := func(txn *badger.Txn) error {
		clear(c.out)
		ch.reset()
		return ins.insertTxn(txn, c, withBody, ch)
	}
	if !reserving && ins.payload {
		size := len(ins.in.RawBody) + len(ins.in.Records[0].Event) + recordOverhead
		op := &gatherOp{ctx: ctx, key: string(c.key(c.todo[0])), size: size, fn: fn, durable: ins.durable,
			gated: true, committed: func() { ins.b.resv.apply(ch) }}
		err := ins.b.gather.write(op)
		ins.synced = op.synced != nil && err == nil
		return err
	}
	unlock := ins.b.resv.lock(reserving)
	defer unlock()
	err := ins.b.update(ctx, fn)
	if err == nil {
		ins.b.resv.apply(ch)
	}
	return err
}

// finish fills in the chunk's results. The final chunk's cache entries wait
// for the sync (publish); an earlier chunk's are cached now, as not synced.
func (ins *inserter) finish(c *insertChunk, final bool) {
	for i, o := range c.out {
		r := ins.in.Records[i]
		if o.inserted {
			ins.res[i] = store.InsertResult{Inserted: true}
		} else {
			ins.res[i] = store.InsertResult{Existing: o.existing, ExistingID: o.existingID}
		}
		if !final {
			ins.cachePut(c, i, r, o, false)
		}
	}
	for i, j := range c.dupOf {
		if ins.res[j].Inserted {
			ins.res[i] = store.InsertResult{Existing: ins.in.Records[j].Status, ExistingID: ins.in.Records[j].ID}
		} else {
			ins.res[i] = store.InsertResult{Existing: ins.res[j].Existing, ExistingID: ins.res[j].ExistingID}
		}
	}
	if final {
		ins.last = c
	}
}

// cachePut caches what the chunk learned about record i.
func (ins *inserter) cachePut(c *insertChunk, i int, r *store.Record, o insertOutcome, synced bool) {
	k := string(c.key(i))
	switch {
	case o.inserted:
		// The state just written, cached without reading it back: at
		// version 0 it gives way to any state read from Badger later
		// and never displaces one.
		ins.b.cache.put(k, c.gen, r.Status, expiresAt(r, ins.now), 0, synced)
	case o.existingID == r.ID:
		ins.b.cache.put(k, c.gen, o.existing, o.expiresAt, o.version, synced)
	}
}

// publish runs once everything is synced (if durable): the final chunk's
// cache entries, and the handover of the expected records that were
// inserted, which a worker may now deliver.
func (ins *inserter) publish(durable bool) {
	if c := ins.last; c != nil {
		for i, o := range c.out {
			ins.cachePut(c, i, ins.in.Records[i], o, durable)
		}
	}
	for _, i := range ins.expected {
		r := ins.in.Records[i]
		k := string(recordKey(r.Source, r.ID))
		if ins.res[i].Inserted {
			ins.b.hand.offer(k, r)
		} else {
			ins.b.hand.offer(k, nil)
		}
	}
	ins.expected = nil
}

// endExpectations ends what publish did not get to (an error).
func (ins *inserter) endExpectations() {
	for _, i := range ins.expected {
		r := ins.in.Records[i]
		ins.b.hand.offer(string(recordKey(r.Source, r.ID)), nil)
	}
}

// insertTxn is one attempt at inserting the records of c still to look up
// (c.todo), their outcomes going to c.out: it finds what holds each key,
// then writes the records that found theirs free. withBody writes the
// shared body entry (when the batch has one) if anything was written.
func (ins *inserter) insertTxn(txn *badger.Txn, c *insertChunk, withBody bool, ch *reservationChanges) error {
	inserted, err := ins.findHolders(txn, c, ch)
	if err != nil {
		return err
	}
	if len(inserted) > 0 && ins.bodyID != nil && withBody {
		if err := txn.Set(bodyKey(ins.bodyID), encodeBodyValue(ins.now, inserted, ins.in.RawBody)); err != nil {
			return err
		}
	}
	return ins.writeInserted(txn, c, ch)
}

// findHolders looks up who holds the id and the dedup key of each record
// of c.todo, in Badger and among the reservations in memory (which hold
// their keys like stored records), and sets its outcome: a duplicate of
// the holder, or inserted. Expired reservations found on the way are
// collected in ch to be dropped. It returns the keys of the records to
// store in Badger (reserved records stay in memory).
func (ins *inserter) findHolders(txn *badger.Txn, c *insertChunk, ch *reservationChanges) (inserted [][]byte, err error) {
	b, now := ins.b, ins.now
	for _, i := range c.todo {
		r := ins.in.Records[i]
		var carried map[string][]store.Attempt
		item, err := txn.Get(c.key(i))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("reading %s %s: %w", r.Source, r.ID, err)
		case metaStatus[item.UserMeta()] == store.StatusReleased:
			// A released record holds no key: the insert replaces it
			// and starts with its attempts.
			sr, _, err := readRecord(txn, c.key(i))
			if err != nil {
				return nil, fmt.Errorf("reading released %s %s: %w", r.Source, r.ID, err)
			}
			if err := b.deleteRecord(txn, c.key(i), sr); err != nil {
				return nil, fmt.Errorf("replacing released %s %s: %w", r.Source, r.ID, err)
			}
			carried = make(map[string][]store.Attempt, len(sr.rec.Deliveries))
			for _, d := range sr.rec.Deliveries {
				carried[d.Destination] = d.Attempts
			}
		default:
			c.out[i] = insertOutcome{existing: metaStatus[item.UserMeta()], existingID: r.ID, version: item.Version(), expiresAt: item.ExpiresAt()}
			continue
		}
		if held, live := b.resv.holder(false, string(c.key(i)), now); live {
			c.out[i] = insertOutcome{existing: store.StatusReserved, existingID: r.ID}
			continue
		} else if held != nil {
			ch.drop = append(ch.drop, held)
		}
		if r.DedupKey != "" {
			held, err := dedupHolder(txn, r, now)
			if err != nil {
				return nil, fmt.Errorf("reading the dedup key of %s %s: %w", r.Source, r.ID, err)
			}
			if held != nil {
				c.out[i] = insertOutcome{existing: held.status, existingID: held.id}
				continue
			}
			if res, live := b.resv.holder(true, string(dedupKey(r.Source, r.DedupKey)), now); live {
				c.out[i] = insertOutcome{existing: store.StatusReserved, existingID: res.rec.ID}
				continue
			} else if res != nil {
				ch.drop = append(ch.drop, res)
			}
		}
		c.out[i] = insertOutcome{inserted: true, carried: carried}
		if r.Status != store.StatusReserved {
			inserted = append(inserted, c.key(i))
		}
	}
	return inserted, nil
}

// writeInserted writes the records of c that findHolders found free, and
// their dedup entries. A reserved record is collected in ch instead, to be
// held in memory once the transaction commits.
func (ins *inserter) writeInserted(txn *badger.Txn, c *insertChunk, ch *reservationChanges) error {
	now := ins.now
	for _, i := range c.todo {
		if !c.out[i].inserted {
			continue
		}
		r := ins.in.Records[i]
		if r.Status == store.StatusReserved {
			// Set on the caller's record: it is what Release is given.
			r.ReservedUntil = now.Add(ins.b.opts.ReservationExpiry)
		}
		// Sequences are given anew: the transaction may run again.
		for j := range r.Deliveries {
			r.Deliveries[j].Sequence = 0
		}
		if r.Status != store.StatusReserved {
			// On the caller's record: Insert hands the sequences back.
			if err := assignSequences(txn, r); err != nil {
				return err
			}
		}
		if carried := c.out[i].carried; carried != nil {
			// A copy: the transaction may run again, and the caller's
			// record stays as given.
			cp := *r
			cp.Deliveries = slices.Clone(r.Deliveries)
			for j := range cp.Deliveries {
				d := &cp.Deliveries[j]
				d.Attempts = append(slices.Clone(carried[d.Destination]), d.Attempts...)
			}
			r = &cp
		}
		if r.Status == store.StatusReserved {
			res := &reservation{rec: cloneRecord(r), key: string(c.key(i)), at: now, grp: ch.grp}
			if r.DedupKey != "" {
				res.dkey = string(dedupKey(r.Source, r.DedupKey))
			}
			ch.add = append(ch.add, res)
			continue
		}
		kind, body := bodyNone, []byte(nil)
		switch {
		case ins.payload:
			kind, body = bodyPayload, ins.in.RawBody
		case ins.bodyID != nil:
			kind, body = bodyRef, ins.bodyID
		}
		if err := ins.b.writeRecord(txn, c.key(i), nil, persisted(r), kind, body, now); err != nil {
			return err
		}
		if r.DedupKey != "" {
			if err := writeDedup(txn, r, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshCache reads keys back from a fresh snapshot and caches the states
// that may be cached (see dedupCache). synced tells that the writes being
// refreshed were synced. The state read back may be a newer, unsynced
// update, but what dedup needs durable is the key's presence, and that was
// synced with the earlier write (a deletion in between bumps the cache
// generation and the put is dropped).
func (b *Store) refreshCache(keys [][]byte, synced bool) {
	if b.cache == nil || len(keys) == 0 {
		return
	}
	gen := b.cache.generation()
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	for _, k := range keys {
		item, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			b.cache.put(string(k), gen, "", 0, 0, false)
		case err == nil:
			b.cache.put(string(k), gen, metaStatus[item.UserMeta()], item.ExpiresAt(), item.Version(), synced)
		}
	}
}
