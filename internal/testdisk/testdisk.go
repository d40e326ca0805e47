// Package testdisk gives tests a small real filesystem to fill up: a tmpfs
// mounted for the test, a way to fill it, and what files take on disk.
package testdisk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size ("64m") for the rest of t and returns its
// path, or skips t when this process may not mount one (mounting needs
// root). Whatever t leaves open in it must be closed before t's cleanups
// run, or the unmount fails.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file in dir until its filesystem is full and returns the
// file's path; removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for range 1 << 16 { // 64 GiB: far more than a test's tmpfs
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
	t.Fatalf("%s never filled up", dir)
	return ""
}

// Allocated is the disk space the files matching the glob pattern take:
// their allocated blocks, not their sizes, since a sparse file (Badger's
// value log being written) is far smaller on disk than its size says. A
// file removed meanwhile counts for nothing.
func Allocated(t testing.TB, pattern string) int64 {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue // removed meanwhile
		}
		n += st.Sys().(*syscall.Stat_t).Blocks * 512
	}
	return n
}

// Files lists the files directly in dir with their sizes, so that a test
// can tell whether anything in a directory was removed, added or changed
// in size.
func Files(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = info.Size()
	}
	return files
}
