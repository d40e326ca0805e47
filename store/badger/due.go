package badger

import (
	"sync"
	"time"
)

// dueFullScanEvery is how often Claim reads a destination's due index from its
// start rather than from its mark (see dueMarks).
const dueFullScanEvery = time.Second

// dueMarks remember, per destination, where in the due index Claim's scan may
// start. Delivered events leave their due entries deleted, and Badger keeps
// a deleted key in its tables until compaction drops it; the oldest entries,
// where a scan from the start begins, are mostly such tombstones, and
// walking past thousands of them on every claim was most of the engine's
// CPU. A mark is the earliest live entry the last scan found, lowered by
// every due entry written since that scan began.
//
// A mark is only a hint: a write that began before a scan and committed
// after its snapshot can be left below the mark by that scan. So that such
// an event is never stranded, every dueFullScanEvery one scan starts from
// the beginning; the worst a wrong mark can do is delay a delivery by that
// much.
type dueMarks struct {
	mu sync.Mutex
	m  map[string]*dueMark
}

type dueMark struct {
	low      time.Time // scans start here; zero: from the beginning
	written  time.Time // earliest due time written since the oldest running scan began
	wrote    bool      // written is set
	scans    int       // scans between begin and scanned
	fullScan time.Time // when the next scan starts from the beginning
}

func newDueMarks() *dueMarks { return &dueMarks{m: make(map[string]*dueMark)} }

func (d *dueMarks) mark(source string) *dueMark {
	m := d.m[source]
	if m == nil {
		m = &dueMark{}
		d.m[source] = m
	}
	return m
}

// wrote must be called before a transaction that writes a due entry of
// source at due commits.
func (d *dueMarks) wrote(source string, due time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mark(source)
	if due.Before(m.low) {
		m.low = due
	}
	if !m.wrote || due.Before(m.written) {
		m.written, m.wrote = due, true
	}
}

// begin returns where a scan of source taken after this call may start:
// the zero time means from the beginning.
func (d *dueMarks) begin(source string, clock time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mark(source)
	if m.scans == 0 {
		// Only when no scan is running: a running one must still learn
		// of every write made since it began.
		m.wrote = false
	}
	m.scans++
	if !clock.Before(m.fullScan) {
		m.fullScan = clock.Add(dueFullScanEvery)
		return time.Time{}
	}
	return m.low
}

// scanned raises the mark after a scan that found its first live entry at
// first (found false: the scan saw no entry at all from its start). Every
// begin must be followed by one scanned.
func (d *dueMarks) scanned(source string, first time.Time, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mark(source)
	m.scans--
	low := first
	if !found {
		low = farFuture
	}
	if m.wrote && m.written.Before(low) {
		low = m.written
	}
	if low.After(m.low) {
		m.low = low
	}
}

// cancel ends a scan begun with begin that did not happen.
func (d *dueMarks) cancel(source string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mark(source).scans--
}

// farFuture stands for "no live entry": every later write lowers it.
var farFuture = time.Unix(1<<40, 0)
