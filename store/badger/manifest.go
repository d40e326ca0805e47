package badger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/y"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ErrDamaged is returned by Open for a directory whose files do not add up:
// tables its MANIFEST does not account for, tables it lists that are gone,
// or a MANIFEST that cannot be read, or is missing beside tables. Opening it
// anyway would lose events (see checkDirectory).
var ErrDamaged = errors.New("badger store directory is damaged")

// checkDirectory refuses a Badger directory that Badger would open as a
// smaller database than the one written to it.
//
// Badger's MANIFEST is the log of its table files: each flush and each
// compaction appends the tables it created and the ones it made obsolete.
// On open, Badger keeps the tables the log lists and deletes every other
// table file in the directory, so a MANIFEST cut short (a torn write, a bad
// copy, a restore that truncated it) silently loses every table written
// after the cut: the gateway would start normally with acknowledged events
// gone. The check below runs before Badger touches the directory and never
// deletes anything.
//
// Not every table file missing from the log is damage. A flush or a
// compaction writes its tables first and records them second, so a process
// killed in between leaves tables the log has never heard of, whose entries
// are all still elsewhere, and which Badger rightly deletes:
//
//   - an interrupted flush: its memtable's write-ahead log (a .mem file) is
//     deleted only after the table is recorded, so the table's newest entry
//     is still in a .mem file (versions grow monotonically: a memtable holds
//     the versions after those of every flushed one);
//   - an interrupted compaction: its input tables are still listed, so the
//     table's newest entry is no newer than the newest listed table's;
//   - a table file cut short by the kill: unreadable, it was never recorded.
//
// A table that is none of these holds entries nothing else has: the log that
// would have listed it was cut. Table files the log lists as deleted are the
// inputs of a finished compaction and are ignored (Badger deletes them). A
// listed table whose file is missing is damage too (Badger refuses those
// itself, with a message that says nothing of the cause).
//
// Value-log (.vlog) and memtable (.mem) files are not listed anywhere:
// Badger opens every one it finds and deletes only empty ones, so there is
// nothing to compare them with.
//
// The check holds Badger's directory lock while it reads, so that it never
// reads the files of a store another process has open; if the lock is
// taken, it leaves the refusal to Badger.
//
// Once the tables add up, checkDirectory removes the memtable and value-log
// files of zero bytes (see removeEmptyLogs): the one change it makes, to
// files that hold nothing.
func checkDirectory(dir string, log *zap.Logger) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("checking the badger store in %q: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // in use: Badger's own lock error says so
	}
	defer func() { _ = unix.Flock(int(d.Fd()), unix.LOCK_UN) }()

	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("checking the badger store in %q: %w", dir, err)
	}
	if err := checkTables(dir, names, log); err != nil {
		return err
	}
	return removeEmptyLogs(dir, names, log)
}

// checkTables is the check of checkDirectory, over the file names in dir.
func checkTables(dir string, names []string, log *zap.Logger) error {
	tables := map[uint64]string{} // id -> file name
	var mems []string
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".sst"):
			if id, err := strconv.ParseUint(strings.TrimSuffix(n, ".sst"), 10, 64); err == nil {
				tables[id] = n
			}
		case strings.HasSuffix(n, ".mem"):
			mems = append(mems, n)
		}
	}
	mf, err := readManifestLog(filepath.Join(dir, badger.ManifestFilename))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if len(tables) == 0 {
			return nil // a new store, or one whose data is all in memtables
		}
		ids := make([]uint64, 0, len(tables))
		for id := range tables {
			ids = append(ids, id)
		}
		return damaged(dir, fmt.Sprintf("its %s is missing while %d table files are there (%s); Badger would start empty and delete them",
			badger.ManifestFilename, len(tables), idList(ids)))
	case errors.Is(err, errManifestVersion):
		return nil // Badger's refusal says what to do
	case errors.Is(err, errManifestUnreadable):
		// Badger refuses it too, before deleting anything, but without
		// saying what it means.
		return damaged(dir, err.Error())
	case err != nil:
		return fmt.Errorf("checking the badger store in %q: %w", dir, err)
	}

	var missing []uint64
	for id := range mf.live {
		if _, ok := tables[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return damaged(dir, fmt.Sprintf("its %s lists %d table files that are not there (%s)",
			badger.ManifestFilename, len(missing), idList(missing)))
	}

	var unknown []uint64
	for id := range tables {
		if !mf.created[id] {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	var newestListed uint64
	for id := range mf.live {
		if v, ok := tableMaxVersion(filepath.Join(dir, tables[id])); ok {
			newestListed = max(newestListed, v)
		}
	}
	oldestInMemtables := memtablesMinVersion(dir, mems)
	var lost, leftover []uint64
	for _, id := range unknown {
		v, ok := tableMaxVersion(filepath.Join(dir, tables[id]))
		switch {
		case !ok, v <= newestListed, v >= oldestInMemtables:
			leftover = append(leftover, id)
		default:
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		return damaged(dir, fmt.Sprintf("%d table files hold entries that its %s does not account for (%s); Badger would delete them",
			len(lost), badger.ManifestFilename, idList(lost)))
	}
	log.Warn("badger store: table files left by an interrupted flush or compaction will be deleted; their entries are in other files",
		zap.String("dir", dir), zap.String("tables", idList(leftover)))
	return nil
}

// damaged is the refusal of dir, with what to do about it.
func damaged(dir, what string) error {
	return fmt.Errorf("%w: %q: %s. It was not opened and nothing in it was changed. "+
		"Restore the whole directory from one copy (a copy of a stopped store, or one snapshot of its filesystem), "+
		"or move the directory aside to start with an empty store; "+
		"if a table file was copied in by mistake, move that file out",
		ErrDamaged, dir, what)
}

func idList(ids []uint64) string {
	slices.Sort(ids)
	names := make([]string, 0, min(len(ids), 10))
	for i, id := range ids {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(ids)-i))
			break
		}
		names = append(names, fmt.Sprintf("%06d.sst", id))
	}
	return strings.Join(names, ", ")
}

// manifestLog is what a MANIFEST says about table files.
type manifestLog struct {
	live    map[uint64]bool // listed and not deleted since
	created map[uint64]bool // ever listed, deleted since or not
}

// errManifestUnreadable marks a MANIFEST that Badger refuses to open itself
// (bad magic, bad checksum, undecodable change), errManifestVersion one of
// another format version.
var (
	errManifestUnreadable = errors.New("its MANIFEST cannot be read")
	errManifestVersion    = errors.New("MANIFEST of another format version")
)

// manifestMagicVersion is the format version of the MANIFEST files Badger
// v4 writes.
const manifestMagicVersion = 8

// readManifestLog replays the MANIFEST at path as Badger does: an 8-byte
// header ("Bdgr", two bytes of the application's magic, two of the format
// version), then change sets, each a big-endian length and CRC-32C followed
// by a protobuf ManifestChangeSet. A change set cut short at the end is
// ignored, as Badger ignores it (and then truncates it away).
func readManifestLog(path string) (*manifestLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(f)
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || string(head[:4]) != "Bdgr" {
		return nil, fmt.Errorf("%w: %d bytes, no Badger header", errManifestUnreadable, st.Size())
	}
	if binary.BigEndian.Uint16(head[6:8]) != manifestMagicVersion {
		return nil, errManifestVersion
	}
	m := &manifestLog{live: map[uint64]bool{}, created: map[uint64]bool{}}
	offset := int64(len(head))
	for {
		var lenCrc [8]byte
		if _, err := io.ReadFull(r, lenCrc[:]); err != nil {
			break // the end, or a torn header
		}
		at := offset
		n := binary.BigEndian.Uint32(lenCrc[:4])
		if int64(n) > st.Size() {
			return nil, fmt.Errorf("%w: a change at byte %d claims %d bytes", errManifestUnreadable, at, n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			break // a torn change set
		}
		offset += 8 + int64(n)
		if crc32.Checksum(buf, y.CastagnoliCrcTable) != binary.BigEndian.Uint32(lenCrc[4:]) {
			return nil, fmt.Errorf("%w: the change at byte %d fails its checksum", errManifestUnreadable, at)
		}
		var set pb.ManifestChangeSet
		if err := proto.Unmarshal(buf, &set); err != nil {
			return nil, fmt.Errorf("%w: the change at byte %d: %v", errManifestUnreadable, at, err)
		}
		for _, c := range set.Changes {
			switch c.Op {
			case pb.ManifestChange_CREATE:
				m.live[c.Id], m.created[c.Id] = true, true
			case pb.ManifestChange_DELETE:
				delete(m.live, c.Id)
			}
		}
	}
	return m, nil
}

// tableMaxVersion reads the newest version in the table file at path from
// its index, without opening it the way Badger does (which needs its
// compression and caches): the file ends with the index, its length, a
// checksum of the index and the checksum's length. ok is false for a file
// that is not a complete table.
func tableMaxVersion(path string) (v uint64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	end := st.Size()
	u32 := func() (int64, bool) {
		var b [4]byte
		if end < 4 {
			return 0, false
		}
		end -= 4
		if _, err := f.ReadAt(b[:], end); err != nil {
			return 0, false
		}
		return int64(binary.BigEndian.Uint32(b[:])), true
	}
	chunk := func(n int64) ([]byte, bool) {
		if n <= 0 || n > end {
			return nil, false
		}
		end -= n
		b := make([]byte, n)
		if _, err := f.ReadAt(b, end); err != nil {
			return nil, false
		}
		return b, true
	}
	chkLen, ok := u32()
	if !ok {
		return 0, false
	}
	raw, ok := chunk(chkLen)
	if !ok {
		return 0, false
	}
	var chk pb.Checksum
	if proto.Unmarshal(raw, &chk) != nil || (chk.Algo != pb.Checksum_CRC32C && chk.Algo != pb.Checksum_XXHash64) {
		return 0, false
	}
	idxLen, ok := u32()
	if !ok {
		return 0, false
	}
	idx, ok := chunk(idxLen)
	if !ok || y.VerifyChecksum(idx, &chk) != nil {
		return 0, false
	}
	defer func() {
		if recover() != nil { // a valid checksum over a malformed index
			v, ok = 0, false
		}
	}()
	return fb.GetRootAsTableIndex(idx, 0).MaxVersion(), true
}

// memtablesMinVersion is the oldest version in the memtable write-ahead logs
// mems in dir, or the largest version if they hold none. A .mem file is a
// 20-byte header and then entries (a header of two bytes and three uvarints:
// key length, value length, expiry; the key, ending with its version; the
// value; a CRC-32C of all that), up to the first empty or damaged one.
func memtablesMinVersion(dir string, mems []string) uint64 {
	oldest := uint64(math.MaxUint64)
	for _, n := range mems {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		st, err := f.Stat()
		r := bufio.NewReaderSize(f, 64<<10)
		if _, derr := r.Discard(memLogHeader); err == nil && derr == nil {
			for {
				key, ok := nextWALKey(r, st.Size())
				if !ok {
					break
				}
				oldest = min(oldest, y.ParseTs(key))
			}
		}
		f.Close()
	}
	return oldest
}

// memLogHeader is the size of the header of a .mem file (an encryption key id
// and an IV).
const memLogHeader = 20

// nextWALKey reads one entry of a memtable log of size bytes and returns its
// key.
func nextWALKey(r *bufio.Reader, size int64) ([]byte, bool) {
	h := crc32.New(y.CastagnoliCrcTable)
	tee := &byteTee{r: r, h: h}
	var meta [2]byte
	if _, err := io.ReadFull(tee, meta[:]); err != nil {
		return nil, false
	}
	klen, err := binary.ReadUvarint(tee)
	if err != nil || klen == 0 || klen > 1<<16 {
		return nil, false
	}
	vlen, err := binary.ReadUvarint(tee)
	if err != nil || int64(vlen) > size {
		return nil, false
	}
	if _, err := binary.ReadUvarint(tee); err != nil {
		return nil, false
	}
	kv := make([]byte, klen+vlen)
	if _, err := io.ReadFull(tee, kv); err != nil {
		return nil, false
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil || binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
		return nil, false
	}
	if klen < 8 {
		return nil, false
	}
	return kv[:klen], true
}

// byteTee reads from r and hashes what it reads.
type byteTee struct {
	r *bufio.Reader
	h io.Writer
}

func (t *byteTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	_, _ = t.h.Write(p[:n])
	return n, err
}

func (t *byteTee) ReadByte() (byte, error) {
	c, err := t.r.ReadByte()
	if err == nil {
		_, _ = t.h.Write([]byte{c})
	}
	return c, err
}

// removeEmptyLogs removes the memtable (.mem) and value-log (.vlog) files of
// zero bytes among names in dir. Badger creates such a file and then sizes
// it, so a process killed in between leaves it empty, and Badger then
// refuses to open the directory ("Create a new file") until an attempt has
// sized it. An empty file holds no entry, and nothing points into it.
func removeEmptyLogs(dir string, names []string, log *zap.Logger) error {
	for _, n := range names {
		if !strings.HasSuffix(n, ".mem") && !strings.HasSuffix(n, ".vlog") {
			continue
		}
		path := filepath.Join(dir, n)
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing the empty log file %q of an interrupted start: %w", path, err)
		}
		log.Warn("badger store: removed an empty log file left by a process killed as it created it",
			zap.String("dir", dir), zap.String("file", n))
	}
	return nil
}
