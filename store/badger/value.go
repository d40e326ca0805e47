package badger

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// errValueMoved reports that a value kept in the value log could not be read
// because value-log GC moved it and deleted its file after the transaction
// had looked up its key. The value is not lost: a new transaction finds it
// where GC put it, and view and update run their function again.
//
// Badger deletes a rewritten value-log file as soon as it has written the new
// pointers (under the same versions), unless an iterator is open; a point
// lookup (Txn.Get) does not count. A lookup made before that holds the old
// pointer, and Item.Value, failing to read the deleted file, logs "Unable to
// read ... file with ID: N not found" and hands the callback an empty value
// with no error (Badger v4.9.6, Item.yieldItemValue; upstream
// dgraph-io/badger#1211 reports such empty values). Every value the store reads goes through itemValue or
// itemValueCopy, which tell such an empty value from a stored one, and every
// transaction that reads values by point lookups runs through view or
// update. A transaction with an iterator open needs neither: Badger keeps the
// files GC rewrote until the last iterator is closed.
var errValueMoved = errors.New("value moved by value-log GC during the read")

// maxValueMovedRetries bounds how often view and update run their function
// again after errValueMoved. One retry finds the moved value; more are only
// needed if GC moves it again meanwhile, and a value that stays unreadable is
// damage, reported as such.
const maxValueMovedRetries = 8

// itemValue calls fn with the value of item, as item.Value does, or returns
// errValueMoved instead of calling it with the empty value Badger yields when
// value-log GC deleted the file the value was in.
func itemValue(item *badger.Item, fn func(v []byte) error) error {
	return item.Value(func(v []byte) error {
		if err := valueRead(item, v); err != nil {
			return err
		}
		return fn(v)
	})
}

// itemValueCopy returns a copy of the value of item, as item.ValueCopy does,
// or errValueMoved (see itemValue).
func itemValueCopy(item *badger.Item) ([]byte, error) {
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	if err := valueRead(item, v); err != nil {
		return nil, err
	}
	return v, nil
}

// valueRead tells an empty value Badger yields on a failed value-log read
// from a stored one: a value kept in the LSM tree has the size of what is
// stored, and one in the value log is never empty (it went there for being at
// least the value threshold), so an empty value of an item whose size is not
// zero was not read.
func valueRead(item *badger.Item, v []byte) error {
	if len(v) == 0 && item.ValueSize() > 0 {
		return fmt.Errorf("key %q: %w", item.Key(), errValueMoved)
	}
	return nil
}

// view runs fn in a read-only transaction, as DB.View does, and runs it again
// in a new transaction when it fails with errValueMoved. fn must reset any
// state it accumulates.
func (b *Store) view(fn func(*badger.Txn) error) error {
	var err error
	for range maxValueMovedRetries + 1 {
		err = b.db.View(fn)
		if !errors.Is(err, errValueMoved) {
			return err
		}
	}
	return fmt.Errorf("value still unreadable after %d reads: %w", maxValueMovedRetries+1, err)
}
