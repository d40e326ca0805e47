package badger

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// storeFormat names the layout of the keys and values of a directory (see
// keys.go). A directory holds it under formatKey from its first open, so
// that a build reading another layout refuses the directory instead of
// reading it as empty or half understood. Directories written before the
// marker existed predate destinations: their due index is keyed by source
// and their records name no destination. Those marked
// "webhook_gateway/destinations-1" hold one delivery state per record
// rather than a delivery per destination. Neither was released, and
// neither is read.
const storeFormat = "webhook_gateway/deliveries-1"

var formatKey = []byte(prefixMeta + "format")

// checkFormat refuses a directory of another format with
// store.ErrUnsupportedFormat, and marks a new (empty) one with this
// build's.
func checkFormat(db *badger.DB, dir string) error {
	var found, other bool
	var got string
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := itemValueCopy(item)
			if err != nil {
				return err
			}
			found, got = true, string(v)
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		other = it.Valid()
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("opening badger store in %q: reading its format: %w", dir, err)
	case found && got == storeFormat:
		return nil
	case found:
		return fmt.Errorf("opening badger store in %q: %w: format %q, this build reads %q; "+
			"move the directory aside (or delete it) and start with an empty one", dir, store.ErrUnsupportedFormat, got, storeFormat)
	case other:
		return fmt.Errorf("opening badger store in %q: %w: its events were written by a build from before deliveries were bound to destinations, "+
			"a format that was never released and is not read; move the directory aside (or delete it) and start with an empty one", dir, store.ErrUnsupportedFormat)
	}
	// A new directory. Set it synced: a directory holding events without
	// the marker would be refused at the next open.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(storeFormat)) }); err != nil {
		return fmt.Errorf("opening badger store in %q: marking its format: %w", dir, err)
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("opening badger store in %q: marking its format: %w", dir, err)
	}
	return nil
}
