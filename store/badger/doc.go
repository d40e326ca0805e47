// Package badger is the embedded engine of the store contract
// (store.Store), on a Badger database in one directory that one process
// opens at a time.
//
// Its files follow its concerns: options.go (Options and their defaults),
// badger.go (Open, Close and the write path every change takes), insert.go
// (Insert and dedup), read.go (Get, RawBody), record.go (reading and
// writing a stored record), transitions.go (the named state changes),
// claim.go, lease.go and due.go (handing due deliveries to delivery workers,
// a lane's head only), handover.go (just-stored deliveries handed over in
// memory), reserve.go (sync reservations, in memory), list.go (List,
// Counts, DeliveryCounts, Purge), keys.go (the key and value layout, lane
// index and sequence counters included), cache.go (the dedup cache), gather.go and groupsync.go
// (shared transactions and the group commit), gc.go (value-log GC, sweeps,
// reclaim), value.go (reading values that value-log GC may move), space.go (the disk-space guard), manifest.go (the check of a
// directory before it is opened) and format.go (the format marker, and the
// refusal of a directory written in another format).
//
// Values are read only through itemValue and itemValueCopy, and a
// transaction that reads values by key (Txn.Get, not an iterator) runs
// through Store.view or Store.update: value-log GC may delete the file of a
// value between its lookup and its read, and Badger then yields an empty
// value without an error; those helpers tell it apart and read again (see
// errValueMoved). TestValuesAreReadThroughItemValue holds the first half.
package badger
