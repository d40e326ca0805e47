package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// Server is a PostgreSQL cluster of one test's own: initdb in a temporary
// directory, run by pg_ctl on a free loopback port, removed when the test
// ends. A test that stops and starts the database uses one, so that the
// server other tests share is never touched.
type Server struct {
	t    testing.TB
	bin  string // directory of initdb and pg_ctl
	dir  string // holds data/, the log and the socket
	port int
	cred *syscall.Credential // the user the server runs as when the test runs as root
}

// NewServer creates and starts a cluster for t, or skips t when initdb and
// pg_ctl cannot be found. The cluster trusts local connections, as the
// shared test server does; it is fsync-free, since nothing here survives a
// power loss anyway, and a fast shutdown still checkpoints everything.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := findBin()
	if bin == "" {
		t.Skip("initdb and pg_ctl not found (on PATH or under /usr/lib/postgresql/*/bin): cannot run a PostgreSQL cluster of the test's own")
	}
	s := &Server{t: t, bin: bin}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() {
		// Immediate: the test is over, nothing needs a checkpoint.
		_, _ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	// PostgreSQL refuses to run as root: run it as the postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres user to run a cluster as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	for try := 1; ; try++ {
		s.port = testcaddy.FreePort(t)
		conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
			"fsync = off\nfull_page_writes = off\nmax_connections = 100\n", s.port, s.dir)
		f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.auto.conf"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.start(); err == nil {
			return s
		} else if try == 3 { // the free port may have been taken meanwhile
			t.Fatal(err)
		}
	}
}

// DSN is the connection string of the cluster's postgres database.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Stop shuts the cluster down the way a restart does (fast: open sessions
// are terminated) and returns once it is down.
func (s *Server) Stop() {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", "fast", "-w", "stop"); err != nil {
		s.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Start starts the stopped cluster and returns once it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	if out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return fmt.Errorf("connecting to the started cluster: %w", err)
	}
	return conn.Close(ctx)
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// findBin returns the directory holding initdb and pg_ctl: the PATH's, or
// Debian's versioned one.
func findBin() string {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		// Through a symlink (/usr/local/bin), to the directory that also
		// holds the postgres binary pg_ctl starts.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		dir := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version first
		_, e1 := os.Stat(filepath.Join(dirs[i], "initdb"))
		_, e2 := os.Stat(filepath.Join(dirs[i], "pg_ctl"))
		if e1 == nil && e2 == nil {
			return dirs[i]
		}
	}
	return ""
}
