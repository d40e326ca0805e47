package pgtest

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// serverLock keeps the tests that use the server apart from a test that
// stops it. go test runs the packages as parallel processes, so it is a
// file lock: every test that asks for the DSN holds it shared until it
// ends, and a test that takes the LocalCluster holds it exclusively, until
// the cluster is running again. The other packages' tests wait meanwhile
// instead of failing against a server that is shutting down.
var serverLock struct {
	mu        sync.Mutex
	f         *os.File
	shared    int // tests of this process holding it shared
	exclusive bool
}

func lockFile(t testing.TB) *os.File {
	t.Helper()
	if serverLock.f == nil {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "webhook-gateway-pgtest.lock"), os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			t.Fatalf("opening the test server's lock file: %v", err)
		}
		serverLock.f = f
	}
	return serverLock.f
}

func flock(t testing.TB, how int) {
	t.Helper()
	for {
		err := syscall.Flock(int(lockFile(t).Fd()), how)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("locking the test server's lock file: %v", err)
		}
		return
	}
}

// holdShared holds the lock shared until t ends.
func holdShared(t testing.TB) {
	t.Helper()
	serverLock.mu.Lock()
	defer serverLock.mu.Unlock()
	if serverLock.shared == 0 && !serverLock.exclusive {
		flock(t, syscall.LOCK_SH)
	}
	serverLock.shared++
	t.Cleanup(func() {
		serverLock.mu.Lock()
		defer serverLock.mu.Unlock()
		serverLock.shared--
		if serverLock.shared == 0 && !serverLock.exclusive {
			flock(t, syscall.LOCK_UN)
		}
	})
}

// holdExclusive holds the lock exclusively until t's later cleanups (those
// registered after this call, such as restarting the server) have run.
func holdExclusive(t testing.TB) {
	t.Helper()
	serverLock.mu.Lock()
	defer serverLock.mu.Unlock()
	// A shared hold of this process converts; other processes' holds are
	// waited for.
	flock(t, syscall.LOCK_EX)
	serverLock.exclusive = true
	t.Cleanup(func() {
		serverLock.mu.Lock()
		defer serverLock.mu.Unlock()
		serverLock.exclusive = false
		if serverLock.shared > 0 {
			flock(t, syscall.LOCK_SH)
		} else {
			flock(t, syscall.LOCK_UN)
		}
	})
}
