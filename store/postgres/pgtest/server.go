package pgtest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster controls the local PostgreSQL cluster (Debian's pg_ctlcluster),
// for tests that stop the database under a running gateway.
type Cluster struct {
	t       testing.TB
	dsn     string
	version string
}

// LocalCluster returns the local cluster serving dsn, or skips t if there is
// none this test can stop and start (no pg_ctlcluster, or no cluster
// configured). Whatever the test does, the cluster is running again when t
// ends. It waits until the tests of other packages that use the server have
// ended, and keeps new ones waiting until then.
func LocalCluster(t testing.TB, dsn string) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		t.Skip("pg_ctlcluster not found: cannot stop and start the database")
	}
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(versions) != 1 {
		t.Skipf("want exactly one configured PostgreSQL version to stop and start: %v", err)
	}
	c := &Cluster{t: t, dsn: dsn, version: versions[0].Name()}
	// Nobody else uses the server until it is running again.
	holdExclusive(t)
	t.Cleanup(func() {
		if !c.reachable() {
			c.Start()
		}
	})
	return c
}

func (c *Cluster) ctl(action string) {
	c.t.Helper()
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", c.version, "main", action).CombinedOutput()
	if err != nil {
		c.t.Fatalf("pg_ctlcluster %s: %v\n%s", action, err, out)
	}
}

// Stop stops the cluster (fast shutdown: open sessions are disconnected).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.ctl("stop")
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.ctl("start")
	deadline := time.Now().Add(60 * time.Second)
	for !c.reachable() {
		if time.Now().After(deadline) {
			c.t.Fatal("PostgreSQL did not accept connections within 60s of starting")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) reachable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx) == nil
}
