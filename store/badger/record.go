package badger

import (
	"bytes"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Status bytes are also stored as the entry's Badger user-meta, so dedup and
// cache read-backs learn a record's status without reading its value.
var statusMeta = map[store.Status]byte{
	store.StatusReserved:  1,
	store.StatusPending:   2,
	store.StatusRetrying:  3,
	store.StatusDelivered: 4,
	store.StatusDead:      5,
	store.StatusReleased:  6,
}

var metaStatus = func() map[byte]store.Status {
	m := make(map[byte]store.Status, len(statusMeta))
	for s, b := range statusMeta {
		m[b] = s
	}
	return m
}()

// expiresAt is the Badger expiry of a record: delivered and released
// records go after their retention; everything else stays until it is delivered, replayed or
// purged.
func expiresAt(r *store.Record, now time.Time) uint64 {
	if (r.Status == store.StatusDelivered || r.Status == store.StatusReleased) && r.Retention > 0 {
		return uint64(now.Add(r.Retention).Unix())
	}
	return 0
}

// writeRecord stores rec under key with its index entries, replacing those
// of old (the previously stored state, or nil).
//
// A record of body kind payload gets its payload entry (rec.Event and body)
// when it is first written (old nil); later states leave it alone.
func (b *Store) writeRecord(txn *badger.Txn, key []byte, old, rec *store.Record, bodyKind byte, body []byte, now time.Time) error {
	if bodyKind == bodyPayload {
		if old == nil {
			if err := txn.Set(payloadKey(key), encodePayloadValue(rec.Event, body)); err != nil {
				return err
			}
		}
		body = nil
	}
	val, err := encodeRecordValue(rec, bodyKind, body)
	if err != nil {
		return err
	}
	exp := expiresAt(rec, now)
	e := badger.NewEntry(key, val).WithMeta(statusMeta[rec.Status])
	e.ExpiresAt = exp
	if err := txn.SetEntry(e); err != nil {
		return err
	}
	tk := timeKey(rec.ReceivedAt, key)
	if old != nil && !old.ReceivedAt.Equal(rec.ReceivedAt) {
		if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
			return err
		}
	}
	te := badger.NewEntry(tk, encodeSummary(rec))
	te.ExpiresAt = exp
	if err := txn.SetEntry(te); err != nil {
		return err
	}
	if rec.Subject != "" {
		// Rewritten with every state, like the listing entry, so that
		// it carries the same summary and expires with the record.
		if old != nil && old.Subject != "" && !old.ReceivedAt.Equal(rec.ReceivedAt) {
			if err := txn.Delete(subjectKey(old.Subject, old.ReceivedAt, key)); err != nil {
				return err
			}
		}
		se := badger.NewEntry(subjectKey(rec.Subject, rec.ReceivedAt, key), encodeSummary(rec))
		se.ExpiresAt = exp
		if err := txn.SetEntry(se); err != nil {
			return err
		}
	}
	var oldDue, newDue []byte
	if old != nil && claimable(old.Status) {
		oldDue = recordDueKey(old)
	}
	if claimable(rec.Status) {
		newDue = recordDueKey(rec)
		b.due.wrote(rec.Destination, dueAt(rec))
	}
	if oldDue != nil && string(oldDue) != string(newDue) {
		if err := txn.Delete(oldDue); err != nil {
			return err
		}
	}
	if newDue != nil {
		if err := txn.Set(newDue, nil); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecord removes a stored record, its index entries, its payload and
// its dedup entry (if the entry is still the record's: after the window a
// later record may hold the same key).
func deleteRecord(txn *badger.Txn, key []byte, sr *storedRecord) error {
	old := sr.rec
	if err := txn.Delete(key); err != nil {
		return err
	}
	if old.DedupKey != "" {
		dk := dedupKey(old.Source, old.DedupKey)
		item, err := txn.Get(dk)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := itemValueCopy(item)
			if err != nil {
				return err
			}
			if _, id, err := decodeDedupValue(v); err != nil || id == old.ID {
				// An unreadable entry can only block the key.
				if err := txn.Delete(dk); err != nil {
					return err
				}
			}
		}
	}
	if sr.bodyKind == bodyPayload {
		if err := txn.Delete(payloadKey(key)); err != nil {
			return err
		}
	}
	if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
		return err
	}
	if old.Subject != "" {
		if err := txn.Delete(subjectKey(old.Subject, old.ReceivedAt, key)); err != nil {
			return err
		}
	}
	if claimable(old.Status) {
		if err := txn.Delete(recordDueKey(old)); err != nil {
			return err
		}
	}
	return nil
}

// readRecord reads and decodes the record under key in txn, with its event.
func readRecord(txn *badger.Txn, key []byte) (*storedRecord, *badger.Item, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, nil, err
	}
	v, err := itemValueCopy(item)
	if err != nil {
		return nil, nil, err
	}
	sr, err := decodeRecordValue(v)
	if err != nil {
		return nil, nil, err
	}
	if sr.bodyKind == bodyPayload {
		err := readPayload(txn, key, func(event, _ []byte) { sr.rec.Event = bytes.Clone(event) })
		if err != nil {
			return nil, nil, err
		}
	}
	return sr, item, nil
}

// readPayload calls fn with the event and raw body in the payload entry of
// the record under key; they are only valid during the call.
func readPayload(txn *badger.Txn, key []byte, fn func(event, body []byte)) error {
	item, err := txn.Get(payloadKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errors.New("payload entry is missing")
	}
	if err != nil {
		return err
	}
	return itemValue(item, func(v []byte) error {
		event, body, err := splitPayloadValue(v)
		if err == nil {
			fn(event, body)
		}
		return err
	})
}
