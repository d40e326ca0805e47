// Package testcaddy runs the real gateway binary (Caddy with this module) as
// a child process for integration tests: real HTTP on loopback, a real Badger
// directory on disk, real restarts and kill -9.
package testcaddy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/caddy once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "webhook-gateway-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/caddy")
		cmd.Dir = moduleRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemoveBinary deletes what Binary built; a test package's TestMain calls
// it after m.Run so that no build is left behind in the temp directory.
func RemoveBinary() {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// moduleRoot finds the repository root from this source file's location.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Instance is one running Caddy process.
type Instance struct {
	t     testing.TB
	Dir   string // working directory holding the Caddyfile and data
	Port  int    // the HTTP site port
	Admin int    // the admin endpoint port
	Env   []string
	// Raw writes the Caddyfile as given, global options included, for
	// configs such as Caddyfile.example that carry their own.
	Raw      bool
	cmd      *exec.Cmd
	output   *syncBuffer
	finished chan struct{}
}

// BaseURL is the site's address.
func (in *Instance) BaseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", in.Port) }

// AdminURL is the admin endpoint's address.
func (in *Instance) AdminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", in.Admin) }

// New prepares an instance in a fresh directory. The Caddyfile template may
// use {{PORT}}, {{ADMIN}} and {{DIR}}; global options setting the admin
// address, disabling automatic HTTPS and persisted config are prepended.
func New(t testing.TB, env ...string) *Instance {
	t.Helper()
	dir := t.TempDir()
	return &Instance{
		t:     t,
		Dir:   dir,
		Port:  FreePort(t),
		Admin: FreePort(t),
		Env:   env,
	}
}

// WriteCaddyfile writes the site config, expanding the template.
func (in *Instance) WriteCaddyfile(site string) string {
	in.t.Helper()
	path, err := in.writeCaddyfile(site)
	if err != nil {
		in.t.Fatal(err)
	}
	return path
}

// writeCaddyfile is WriteCaddyfile returning the error, so that Reload can
// run on a goroutine other than the test's, where t.Fatal is not allowed.
func (in *Instance) writeCaddyfile(site string) (string, error) {
	global := ""
	if !in.Raw {
		global = fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tauto_https off\n\tpersist_config off\n\tstorage file_system %s\n}\n\n",
			in.Admin, filepath.Join(in.Dir, "data"))
	}
	body := strings.NewReplacer(
		"{{PORT}}", fmt.Sprint(in.Port),
		"{{ADMIN}}", fmt.Sprint(in.Admin),
		"{{DIR}}", in.Dir,
	).Replace(site)
	path := filepath.Join(in.Dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(global+body), 0o600); err != nil {
		return "", fmt.Errorf("writing the Caddyfile: %w", err)
	}
	return path, nil
}

// Start runs `caddy run` on the Caddyfile and waits until the site answers.
func (in *Instance) Start(site string) {
	in.t.Helper()
	if err := in.TryStart(site); err != nil {
		in.t.Fatal(err)
	}
}

// TryStart is Start returning the error (with Caddy's output) instead of
// failing the test, for configs that must be refused.
func (in *Instance) TryStart(site string) error {
	in.t.Helper()
	path := in.WriteCaddyfile(site)
	in.output = &syncBuffer{}
	in.cmd = exec.Command(Binary(in.t), "run", "--config", path, "--adapter", "caddyfile")
	in.cmd.Dir = in.Dir
	in.cmd.Env = append(os.Environ(),
		"HOME="+in.Dir,
		"XDG_DATA_HOME="+filepath.Join(in.Dir, "xdg-data"),
		"XDG_CONFIG_HOME="+filepath.Join(in.Dir, "xdg-config"),
	)
	in.cmd.Env = append(in.cmd.Env, in.Env...)
	in.cmd.Stdout = in.output
	in.cmd.Stderr = in.output
	if err := in.cmd.Start(); err != nil {
		return err
	}
	in.finished = make(chan struct{})
	go func() {
		_ = in.cmd.Wait()
		close(in.finished)
	}()
	in.t.Cleanup(in.Stop)

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.finished:
			return fmt.Errorf("caddy exited: %s", in.output.String())
		default:
		}
		resp, err := http.Get(in.AdminURL() + "/config/")
		if err == nil {
			resp.Body.Close()
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", in.Port), time.Second); err == nil {
				conn.Close()
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.Stop()
	return fmt.Errorf("caddy did not come up in time: %s", in.output.String())
}

// Reload runs `caddy reload` with a new site config and returns its error,
// with the command's output. It is safe to call from any goroutine.
func (in *Instance) Reload(site string) error {
	path, err := in.writeCaddyfile(site)
	if err != nil {
		return err
	}
	cmd := exec.Command(Binary(in.t), "reload", "--config", path, "--adapter", "caddyfile",
		"--address", fmt.Sprintf("127.0.0.1:%d", in.Admin))
	cmd.Dir = in.Dir
	cmd.Env = append(os.Environ(), in.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("caddy reload: %v: %s", err, out)
	}
	return nil
}

// Stop ends the process gracefully (SIGINT) and waits for it.
func (in *Instance) Stop() {
	in.signal(syscall.SIGINT)
}

// Kill ends the process with SIGKILL, as a crash would.
func (in *Instance) Kill() {
	in.signal(syscall.SIGKILL)
}

func (in *Instance) signal(sig syscall.Signal) {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	select {
	case <-in.finished:
		return
	default:
	}
	_ = in.cmd.Process.Signal(sig)
	select {
	case <-in.finished:
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.finished
	}
}

// Output is everything the process printed so far.
func (in *Instance) Output() string {
	if in.output == nil {
		return ""
	}
	return in.output.String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
