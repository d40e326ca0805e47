package badger

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// tableTestOpts flush a memtable every megabyte, so that a few thousand
// events make several tables.
var tableTestOpts = Options{MemTableSize: 1 << 20, BaseTableSize: 256 << 10, GCInterval: -1, MinFreeSpace: -1}

// tableEvent is event i of the directories these tests build: about 1 KB.
func tableEvent(i int) *store.Record {
	r := rec("/pay", fmt.Sprintf("t%05d", i), store.StatusPending)
	pad := make([]byte, 400)
	rnd := rand.New(rand.NewPCG(uint64(i), 0))
	for j := range pad {
		pad[j] = byte(rnd.Uint32())
	}
	r.Event = mustJSON(map[string]string{"id": r.ID, "pad": hex.EncodeToString(pad)})
	return r
}

// buildTables stores n events in a new store in dir, leaving several table
// files. The last 100 are stored after a restart and flushed into a table of
// their own at Close, with no compaction after it: that flush is the last
// change the MANIFEST records, and the table is on level 0.
func buildTables(t *testing.T, dir string, n int) {
	t.Helper()
	for _, r := range [][2]int{{0, n - 100}, {n - 100, n}} {
		b, err := Open(dir, tableTestOpts)
		if err != nil {
			t.Fatal(err)
		}
		for i := r[0]; i < r[1]; i++ {
			mustInsert(t, b, single(tableEvent(i), "{}"), false)
		}
		// Badger compacts level 0 once it holds five tables: with
		// fewer than four, the flush at Close starts no compaction.
		testwait.For(t, "level 0 compacted", func() bool { return b.db.Levels()[0].NumTables < 4 })
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(ssts) < 3 {
		t.Fatalf("%d table files: the test writes too little", len(ssts))
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for name := range testdisk.Files(t, from) {
		copyFile(t, filepath.Join(from, name), filepath.Join(to, name))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkEvents fails unless the store in dir opens and holds events [0, n).
func checkEvents(t *testing.T, dir string, n int) {
	t.Helper()
	b, err := Open(dir, tableTestOpts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer b.Close()
	for i := range n {
		if _, err := b.Get(context.Background(), "/pay", tableEvent(i).ID); err != nil {
			t.Fatalf("event %d of %d: %v", i, n, err)
		}
	}
}

// A MANIFEST cut short, by one byte or by many, makes Open refuse the
// directory with ErrDamaged, naming it, and leave every file as it was;
// with the MANIFEST restored, every event is there.
func TestOpenRefusesTruncatedManifest(t *testing.T) {
	const n = 4000
	built := filepath.Join(t.TempDir(), "built")
	// Cut by one byte, the MANIFEST no longer lists the table of the
	// last 100 events, which Badger would delete.
	buildTables(t, built, n)
	manifest, err := os.ReadFile(filepath.Join(built, badger.ManifestFilename))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, len(manifest) / 2, len(manifest) - 8, len(manifest) - 4, len(manifest)} {
		t.Run(fmt.Sprintf("cut%d", cut), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			copyDir(t, built, dir)
			path := filepath.Join(dir, badger.ManifestFilename)
			if err := os.Truncate(path, int64(len(manifest)-cut)); err != nil {
				t.Fatal(err)
			}
			before := testdisk.Files(t, dir)
			_, err := Open(dir, tableTestOpts)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open with %d of %d manifest bytes: %v, want ErrDamaged", len(manifest)-cut, len(manifest), err)
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "Restore") {
				t.Fatalf("the error names neither the directory nor what to do: %v", err)
			}
			if cut == 1 && !strings.Contains(err.Error(), "does not account for") {
				t.Fatalf("a MANIFEST one flush short: %v", err)
			}
			if after := testdisk.Files(t, dir); !maps.Equal(before, after) {
				t.Fatalf("a refused open changed the directory:\nbefore %v\nafter  %v", before, after)
			}
			if err := os.WriteFile(path, manifest, 0o600); err != nil {
				t.Fatal(err)
			}
			checkEvents(t, dir, n)
		})
	}
}

// A directory whose MANIFEST is gone while its tables are there is refused
// too (Badger would start empty and delete them).
func TestOpenRefusesMissingManifest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	buildTables(t, dir, 4000)
	if err := os.Remove(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		t.Fatal(err)
	}
	before := testdisk.Files(t, dir)
	if _, err := Open(dir, tableTestOpts); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open without a manifest: %v", err)
	}
	if after := testdisk.Files(t, dir); !maps.Equal(before, after) {
		t.Fatalf("a refused open changed the directory:\nbefore %v\nafter  %v", before, after)
	}
}

// A table the MANIFEST lists but whose file is gone is refused with
// ErrDamaged, naming the file.
func TestOpenRefusesMissingTable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	buildTables(t, dir, 4000)
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err := os.Remove(ssts[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, tableTestOpts); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), filepath.Base(ssts[0])) {
		t.Fatalf("open without %s: %v", filepath.Base(ssts[0]), err)
	}
}

// A store closed cleanly opens, and so does one left as a kill between
// writing a table and recording it leaves it: from a flush, whose memtable
// log is still there, or from a compaction, whose inputs are still listed.
func TestOpenAcceptsInterruptedFlushAndCompaction(t *testing.T) {
	const n = 4000
	base := filepath.Join(t.TempDir(), "base")
	buildTables(t, base, n)
	checkEvents(t, base, n)

	t.Run("flush", func(t *testing.T) {
		// The state after a kill: events still in a memtable log. A
		// copy opened once flushes that memtable into a table, which
		// is the table the killed process was writing.
		killed := filepath.Join(t.TempDir(), "killed")
		b, err := Open(killed, tableTestOpts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			mustInsert(t, b, single(tableEvent(i), "{}"), true)
		}
		killCopy := filepath.Join(t.TempDir(), "at-kill")
		copyDir(t, killed, killCopy) // synced: as a kill -9 would leave it
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if mems, _ := filepath.Glob(filepath.Join(killCopy, "*.mem")); len(mems) == 0 {
			t.Fatal("no memtable log in the copy")
		}
		flushed := filepath.Join(t.TempDir(), "flushed")
		copyDir(t, killCopy, flushed)
		checkEvents(t, flushed, 300) // flushes the memtable, deletes its log
		orphans := newTables(t, killCopy, flushed)
		if len(orphans) == 0 {
			t.Fatal("reopening made no table")
		}
		for _, name := range orphans {
			copyFile(t, filepath.Join(flushed, name), filepath.Join(killCopy, name))
		}
		// The same table without its memtable log is a lost one.
		lost := filepath.Join(t.TempDir(), "lost")
		copyDir(t, killCopy, lost)
		mems, _ := filepath.Glob(filepath.Join(lost, "*.mem"))
		for _, m := range mems {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
		}

		checkLeftovers(t, killCopy, orphans)
		checkEvents(t, killCopy, 300)
		if _, err := Open(lost, tableTestOpts); !errors.Is(err, ErrDamaged) {
			t.Fatalf("a table with entries found nowhere else: %v", err)
		}
	})

	t.Run("compaction", func(t *testing.T) {
		// A copy compacted into new tables: those tables, copied back
		// beside the inputs still listed, are what a compaction killed
		// before recording them leaves.
		compacted := filepath.Join(t.TempDir(), "compacted")
		copyDir(t, base, compacted)
		b, err := Open(compacted, tableTestOpts)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.db.Flatten(2); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		orphans := newTables(t, base, compacted)
		if len(orphans) == 0 {
			t.Fatal("flattening made no table")
		}
		killed := filepath.Join(t.TempDir(), "killed")
		copyDir(t, base, killed)
		for _, name := range orphans {
			copyFile(t, filepath.Join(compacted, name), filepath.Join(killed, name))
		}
		checkLeftovers(t, killed, orphans)
		checkEvents(t, killed, n)
	})
}

// checkLeftovers checks that the directory check accepts dir and names
// leftovers as the table files it leaves to Badger to delete.
func checkLeftovers(t *testing.T, dir string, leftovers []string) {
	t.Helper()
	core, logs := observer.New(zap.WarnLevel)
	if err := checkDirectory(dir, zap.New(core)); err != nil {
		t.Fatalf("check: %v", err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d warnings, want the one naming the leftovers", len(entries))
	}
	named := entries[0].ContextMap()["tables"]
	for _, name := range leftovers {
		if !strings.Contains(fmt.Sprint(named), name) {
			t.Fatalf("leftover %s not named: %v", name, named)
		}
	}
}

// A kill between Badger creating a memtable or value-log file and sizing it
// leaves it empty, which Badger refuses to open; Open removes it.
func TestOpenAfterKillMidCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	buildTables(t, dir, 4000)
	for _, name := range []string{"00098.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	checkEvents(t, dir, 4000)
}

// newTables lists the table files in after that before does not have.
func newTables(t *testing.T, before, after string) []string {
	t.Helper()
	old := testdisk.Files(t, before)
	var out []string
	for name := range testdisk.Files(t, after) {
		if _, ok := old[name]; !ok && strings.HasSuffix(name, ".sst") {
			out = append(out, name)
		}
	}
	return out
}

// killChildEnv makes the test binary a writer that TestOpenAfterKill9 kills.
const killChildEnv = "STORE_KILL_CHILD_DIR"

// A process killed (SIGKILL) while writing flat out, flushing and compacting
// all the while, leaves a directory that opens, with every acknowledged
// event; several times over on the same directory.
func TestOpenAfterKill9(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("runs child processes")
	}
	dir := filepath.Join(t.TempDir(), "db")
	acked := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenAfterKill9$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir, fmt.Sprintf("STORE_KILL_CHILD_FROM=%d", acked))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill once the child has acknowledged a different number of
		// events each round, so that the kill falls at another point
		// of its flushes and compactions.
		want := acked + 1500 + 1000*round
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				acked = n
			}
			if acked >= want {
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if acked < want {
			t.Fatalf("round %d: the child stopped at %d events", round, acked)
		}
		checkEvents(t, dir, acked)
	}
}

// killChild inserts events from STORE_KILL_CHILD_FROM on, printing the
// number acknowledged so far after each, until it is killed. A kill leaves
// what was committed in the memtable log's pages, so an insert need not be
// synced to survive it; one in 64 is, as the gateway's are.
func killChild(dir string) {
	from, _ := strconv.Atoi(os.Getenv("STORE_KILL_CHILD_FROM"))
	b, err := Open(dir, tableTestOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := from; ; i++ {
		in := single(tableEvent(i), "{}")
		if _, err := b.Insert(context.Background(), in, i%64 == 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(i + 1)
	}
}
