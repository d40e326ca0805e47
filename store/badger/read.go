package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Get implements store.Store.
func (b *Store) Get(ctx context.Context, source, id string) (*store.Record, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	key := recordKey(source, id)
	// A reservation is looked up first: a delivered one leaves memory only
	// after its record is in Badger.
	if r := b.resv.get(string(key)); r != nil {
		return b.resv.view(r), nil
	}
	var rec *store.Record
	err = b.view(func(txn *badger.Txn) error {
		sr, _, err := readRecord(txn, key)
		if err != nil {
			return err
		}
		rec = sr.rec
		b.leases.view(string(key), rec)
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get %s %s: %w", source, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", source, id, err)
	}
	return rec, nil
}

// RawBody implements store.Store. For a batch, every record returns the whole
// request body it came in.
func (b *Store) RawBody(ctx context.Context, source, id string) ([]byte, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return nil, fmt.Errorf("raw body: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r := b.resv.get(string(recordKey(source, id))); r != nil {
		return bytes.Clone(r.grp.raw), nil
	}
	var body []byte
	err = b.view(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(source, id))
		if err != nil {
			return err
		}
		return itemValue(item, func(v []byte) error {
			p, err := splitRecordValue(v)
			if err != nil {
				return err
			}
			switch p.bodyKind {
			case bodyPayload:
				return readPayload(txn, recordKey(source, id), func(_, raw []byte) { body = bytes.Clone(raw) })
			case bodyRef:
				bi, err := txn.Get(bodyKey(p.body))
				if errors.Is(err, badger.ErrKeyNotFound) {
					return errors.New("shared body entry is missing")
				}
				if err != nil {
					return err
				}
				return itemValue(bi, func(bv []byte) error {
					_, _, raw, err := decodeBodyValue(bv)
					body = append([]byte{}, raw...)
					return err
				})
			default:
				body = []byte{}
			}
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("raw body of %s %s: %w", source, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw body of %s %s: %w", source, id, err)
	}
	return body, nil
}
