package badger

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// groupSyncer makes committed Badger writes durable in groups. Badger runs
// with SyncWrites off; a durable writer commits its transaction and then
// waits for a sync that started after its commit. Writers that arrive while
// a sync runs join the next one, so N concurrent writers pay for about one
// fsync rather than N, which is what turns a few thousand durable commits a
// second into tens of thousands.
//
// A sync of the write-ahead log costs about 300 µs of CPU on the benchmark
// machine however few writes it covers (the kernel writes back and re-protects the log's
// mapped pages), so under load the syncer waits a little for company: once
// a sync has ended, if writes are still being committed in a shared
// transaction (see txnGatherer), whose writers will join at once, it waits
// for them, at most lingerMax, before it starts the next sync. A write that
// finds the syncer idle is never delayed.
type groupSyncer struct {
	sync func() error
	// committing, if set, is how many durable writes are being committed
	// and will join a sync as soon as they have; nudge is signalled when
	// it may have fallen to zero.
	committing func() int64
	nudge      chan struct{}

	mu      sync.Mutex
	next    *syncBatch // waiters for the sync that has not started yet
	running bool       // the sync loop goroutine is alive
	wg      sync.WaitGroup

	syncs, waits, lingers atomic.Uint64
	// batches counts syncs by the number of writes they covered.
	batches store.BatchHistogram
}

// lingerMax bounds the wait for writes still being committed before a sync
// under load: well under a sync's own duration (1-2 ms here).
const lingerMax = 250 * time.Microsecond

type syncBatch struct {
	done chan struct{}
	err  error
	n    uint64 // waiters, counted under the syncer's lock
}

// wait returns once the sync of the batch has finished.
func (b *syncBatch) wait() error {
	<-b.done
	return b.err
}

// wait returns once a sync that started after the call has finished. It does
// not take a context: by the time it is called the write is committed, and
// giving up early would only turn a success into an ambiguous error.
func (g *groupSyncer) wait() error { return g.join(1).wait() }

// join registers n writes committed before the call and returns the batch
// whose sync covers them.
func (g *groupSyncer) join(n uint64) *syncBatch {
	g.waits.Add(n)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == nil {
		g.next = &syncBatch{done: make(chan struct{})}
	}
	b := g.next
	b.n += n
	if !g.running {
		g.running = true
		g.wg.Add(1)
		go g.loop()
	}
	return b
}

// loop runs syncs back to back while anyone waits, then exits, so an idle
// store has no goroutine spinning.
func (g *groupSyncer) loop() {
	defer g.wg.Done()
	busy := false // a sync has just run: the store is under load
	for {
		if busy {
			g.linger()
		}
		g.mu.Lock()
		b := g.next
		g.next = nil
		if b == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		// Every waiter in b registered after its commit and before this
		// point, so this sync covers all of their writes.
		g.syncs.Add(1)
		g.batches.Observe(b.n)
		b.err = g.sync()
		close(b.done)
		busy = true
	}
}

// linger waits, at most lingerMax, until no durable write is being
// committed.
func (g *groupSyncer) linger() {
	if g.committing == nil || g.committing() == 0 {
		return
	}
	g.lingers.Add(1)
	deadline := time.NewTimer(lingerMax)
	defer deadline.Stop()
	for g.committing() > 0 {
		select {
		case <-g.nudge:
		case <-deadline.C:
			return
		}
	}
}

// wake tells a lingering loop that the writes it waits for may be done.
func (g *groupSyncer) wake() {
	select {
	case g.nudge <- struct{}{}:
	default:
	}
}

// drain waits until the sync loop has exited. Callers must make sure no new
// waiter arrives (Close holds the store's write lock).
func (g *groupSyncer) drain() { g.wg.Wait() }

// logSyncer makes Badger's logs durable: the write-ahead logs of the
// memtables (.mem) and the value-log files (.vlog). Badger writes both
// through shared memory maps.
//
// It replaces Badger's own DB.Sync, which msyncs the active WAL while holding
// the database's lock shared; the write goroutine takes that lock exclusively
// for every batch of commits, and reads queue behind the waiting writer, so
// each sync stalled every write and read for its duration (most goroutines
// of a loaded gateway were parked there). A datasync on a descriptor of the
// same file writes back the pages dirtied through the map just as msync
// does, without touching Badger's lock.
//
// DB.Sync also covers only the newest WAL and value-log file; one rotated out
// between a commit and the next sync would never be fsynced (the memtable is
// written to a synced SST later, not at once, and a rotated value-log file
// never is). So each sync datasyncs the newest file of each kind, each older
// one once (nothing writes to it after rotation), and fsyncs the directory
// whenever a file appeared since the last sync, so that a new log's entry
// survives.
//
// The directory is listed at every sync, since a rotation must be seen
// before the writes in the new file are acknowledged, but the descriptors
// of the files it syncs stay open until the files are synced for good or
// gone: opening and closing them cost as much CPU as the listing. A
// datasync (fdatasync on Linux) is enough: Badger sizes its log files when
// it creates them, so what a sync must carry besides the data is the
// blocks' allocation, which fdatasync writes too; it skips the inode's
// timestamps, which every write through the map touches.
//
// Only the group syncer's goroutine calls sync; close runs after it has
// stopped.
type logSyncer struct {
	dir    string
	synced map[string]bool     // rotated files already synced
	seen   map[string]bool     // files present at the previous sync
	open   map[string]*os.File // descriptors kept for the files still synced
	// openFile, datasync and fsyncDir are the system calls; tests count
	// them.
	openFile func(path string) (*os.File, error)
	datasync func(f *os.File) error
	fsyncDir func(path string) error
}

func newLogSyncer(dir string) *logSyncer {
	return &logSyncer{dir: dir, synced: map[string]bool{}, seen: map[string]bool{}, open: map[string]*os.File{},
		openFile: os.Open, datasync: datasync, fsyncDir: fsyncPath}
}

func (l *logSyncer) sync() error {
	names, err := listDir(l.dir)
	if err != nil {
		return fmt.Errorf("listing %q to sync the logs: %w", l.dir, err)
	}
	newest := map[string]int{".mem": -1, ".vlog": -1}
	type logFile struct {
		name string
		ext  string
		fid  int
	}
	var files []logFile
	for _, name := range names {
		ext := filepath.Ext(name)
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		fid, err := strconv.Atoi(strings.TrimSuffix(name, ext))
		if err != nil {
			continue
		}
		files = append(files, logFile{name, ext, fid})
		if fid > newest[ext] {
			newest[ext] = fid
		}
	}
	present := make(map[string]bool, len(files))
	appeared := false
	var firstErr error
	for _, f := range files {
		present[f.name] = true
		appeared = appeared || !l.seen[f.name]
		active := f.fid == newest[f.ext]
		if !active && l.synced[f.name] {
			continue
		}
		if err := l.syncFile(f.name); err != nil {
			if os.IsNotExist(err) {
				// Flushed to an SST (WAL) or collected (value log)
				// since the listing: nothing left to sync.
				continue
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !active {
			l.synced[f.name] = true
			l.forget(f.name)
		}
	}
	if appeared && firstErr == nil {
		if err := l.fsyncDir(l.dir); err != nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		// Try the whole set again next time.
		present = nil
	}
	l.seen = present
	for name := range l.synced {
		if !l.seen[name] {
			delete(l.synced, name)
		}
	}
	for name := range l.open {
		if !present[name] {
			l.forget(name)
		}
	}
	return firstErr
}

// syncFile datasyncs the log file name through its kept descriptor, opening
// it first if need be.
func (l *logSyncer) syncFile(name string) error {
	f := l.open[name]
	if f == nil {
		var err error
		if f, err = l.openFile(filepath.Join(l.dir, name)); err != nil {
			return err
		}
		l.open[name] = f
	}
	if err := l.datasync(f); err != nil {
		l.forget(name) // reopened next time, in case the descriptor is the problem
		return fmt.Errorf("syncing %q: %w", f.Name(), err)
	}
	return nil
}

// forget closes the kept descriptor of name, if any.
func (l *logSyncer) forget(name string) {
	if f := l.open[name]; f != nil {
		_ = f.Close() // read-only: nothing to lose
		delete(l.open, name)
	}
}

// close closes every kept descriptor.
func (l *logSyncer) close() {
	for name := range l.open {
		l.forget(name)
	}
}

// listDir returns the names in dir.
func listDir(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// fsyncPath fsyncs the file or directory at path.
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %q: %w", path, err)
	}
	return nil
}
