package badger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Disk space. Badger writes its memtable log, its tables and its value log
// through memory maps of sparse files, so on a full disk a write faults a
// page that cannot be allocated and the process dies of SIGBUS, at once and
// again at every start while the disk stays full. The store therefore never
// lets the disk get there:
//
//   - A watermark: new events are refused (ErrNoSpace, which the gateway
//     answers with 503) while less than MinFreeSpace is free, so what is
//     left covers a memtable flush and a compaction. State changes of stored
//     events (deliveries, replays, releases) still go through, down to a
//     small floor: they are small, and they are how a full store drains.
//   - A reserve file of SpaceReserve bytes, allocated while space is
//     plentiful and deleted when the disk falls below half the watermark
//     (another process filled it, or the watermark was too low). Its space
//     is what Badger then finishes its flushes and compactions in, and what
//     a store opened on a full disk starts in: Open deletes it first.
//   - The memtable logs are allocated in full as soon as Badger creates
//     them, so that writing to them never needs a new block.
//
// The store recovers by itself: once MinFreeSpace plus the reserve is free
// again, the reserve is allocated again and new events are accepted.

// reserveFile is the name of the reserve file in the store's directory.
const reserveFile = "space-reserve"

// Timing and slack of the free-space checks.
const (
	// spaceCheckEvery bounds how stale the free-space figure a write is
	// judged by may be.
	spaceCheckEvery = 50 * time.Millisecond
	// spaceCharge is how many bytes of writes since the last check
	// force a new one.
	spaceCharge = 1 << 20
	// spaceFloor is the free space state changes need.
	spaceFloor = 4 << 20
)

// spaceGuard decides whether a write may go ahead on the store's disk.
type spaceGuard struct {
	dir     string
	min     uint64 // the watermark for new events
	reserve int64  // size of the reserve file
	log     *zap.Logger

	mu        sync.Mutex
	checked   time.Time
	free      uint64 // bytes available at the last check
	charged   uint64 // bytes written since
	low       bool   // new events are refused
	err       error  // the last statfs error
	allocated map[string]bool
}

// newSpaceGuard returns a guard for dir, or nil when minFree is negative
// (no checks at all).
func newSpaceGuard(dir string, minFree, reserve int64, log *zap.Logger) *spaceGuard {
	if minFree < 0 {
		return nil
	}
	return &spaceGuard{dir: dir, min: uint64(minFree), reserve: max(reserve, 0), log: log, allocated: map[string]bool{}}
}

// freeSpace returns the bytes available to this process on dir's
// filesystem.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("reading free disk space of %q: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// allow charges a write of about n bytes and says whether it may go ahead:
// a new event needs the watermark, a state change the floor.
func (g *spaceGuard) allow(n int, newEvent bool) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.charged += uint64(n)
	if time.Since(g.checked) >= spaceCheckEvery || g.charged >= spaceCharge {
		g.checkLocked()
	}
	if g.err != nil {
		return nil // unknown: do not refuse on a statfs failure alone
	}
	avail := g.free - min(g.charged, g.free)
	switch {
	case newEvent && (g.low || avail < g.min):
		g.low = true // until a check finds the space
		return fmt.Errorf("%w: %s free in %s, %s needed for new events",
			store.ErrNoSpace, sizeString(avail), g.dir, sizeString(g.min))
	case avail < spaceFloor:
		return fmt.Errorf("%w: %s free in %s", store.ErrNoSpace, sizeString(avail), g.dir)
	}
	return nil
}

// check refreshes the guard; the background loop calls it so that the store
// recovers without waiting for a write.
func (g *spaceGuard) check() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkLocked()
}

// lowOnSpace reports whether new events are being refused.
func (g *spaceGuard) lowOnSpace() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.low
}

func (g *spaceGuard) checkLocked() {
	g.checked, g.charged = time.Now(), 0
	free, err := freeSpace(g.dir)
	if err != nil {
		if g.err == nil {
			g.log.Warn("cannot read free disk space; not guarding it", zap.Error(err))
		}
		g.err = err
		return
	}
	g.err, g.free = nil, free
	path := filepath.Join(g.dir, reserveFile)
	_, statErr := os.Stat(path)
	held := statErr == nil
	wasLow := g.low
	switch {
	case held && free < g.min/2:
		// The disk is nearly full with the reserve held: give its space
		// to Badger's flushes and compactions.
		if err := os.Remove(path); err == nil {
			g.log.Warn("disk nearly full: released the space reserve", zap.String("dir", g.dir), zap.Uint64("free_bytes", free))
			g.free += uint64(g.reserve)
		}
		g.low = true
	case held:
		g.low = free < g.min
	case g.reserve == 0:
		g.low = free < g.min
	case free >= g.min+uint64(g.reserve):
		if err := allocateFile(path, g.reserve); err != nil {
			g.log.Warn("allocating the space reserve", zap.String("dir", g.dir), zap.Error(err))
			_ = os.Remove(path)
			g.low = true
			break
		}
		g.free -= uint64(g.reserve)
		g.low = false
	default:
		g.low = true
	}
	if g.low != wasLow {
		if g.low {
			g.log.Error("disk nearly full: refusing new events until space is freed",
				zap.String("dir", g.dir), zap.Uint64("free_bytes", g.free), zap.Uint64("min_free_bytes", g.min))
		} else {
			g.log.Info("disk space recovered: accepting new events again", zap.String("dir", g.dir), zap.Uint64("free_bytes", g.free))
		}
	}
}

// releaseIfLow deletes the reserve before Badger opens on a nearly full
// disk, so that replaying and flushing its logs has room.
func (g *spaceGuard) releaseIfLow() {
	if g == nil {
		return
	}
	free, err := freeSpace(g.dir)
	if err != nil || free >= g.min {
		return
	}
	if err := os.Remove(filepath.Join(g.dir, reserveFile)); err == nil {
		g.log.Warn("opening on a nearly full disk: released the space reserve", zap.String("dir", g.dir), zap.Uint64("free_bytes", free))
	}
}

// allocateMemtables allocates the blocks of Badger's memtable logs that are
// not yet allocated, so that writing to their memory maps cannot fault on a
// full disk. A log that cannot be allocated (the disk is too full) is left
// to the watermark.
func (g *spaceGuard) allocateMemtables() {
	if g == nil {
		return
	}
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[string]bool, len(g.allocated))
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") {
			continue
		}
		seen[name] = true
		if g.allocated[name] {
			continue
		}
		if err := allocateInPlace(filepath.Join(g.dir, name)); err == nil {
			g.allocated[name] = true
		}
	}
	for name := range g.allocated {
		if !seen[name] {
			delete(g.allocated, name)
		}
	}
}

// allocateInPlace allocates every block of the file at path without
// changing its size or contents.
func allocateInPlace(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, st.Size())
}

// allocateFile creates the file at path with size bytes allocated.
func allocateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeZeros fills f with size zero bytes, for filesystems without
// fallocate.
func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(size, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
	}
	return f.Sync()
}

func sizeString(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// spaceLoop watches the disk until Close, so that the store notices space
// coming back without waiting for a write, and allocates the memtable logs
// Badger creates.
func (b *Store) spaceLoop() {
	defer b.bg.Done()
	t := time.NewTicker(spaceLoopEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.space.check()
			b.space.allocateMemtables()
		}
	}
}

// spaceLoopEvery is how often the disk is watched without writes.
const spaceLoopEvery = 500 * time.Millisecond
