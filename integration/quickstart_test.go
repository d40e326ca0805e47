package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// readmeBlocks returns the fenced blocks of README.md that follow a
// `<!-- quickstart:NAME -->` line, by NAME.
func readmeBlocks(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- quickstart:([a-z]+) -->\n```[a-z]*\n(.*?)```")
	blocks := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		blocks[m[1]] = m[2]
	}
	for _, name := range []string{"caddyfile", "sink", "gateway", "send"} {
		if blocks[name] == "" {
			t.Fatalf("README.md has no block marked quickstart:%s", name)
		}
	}
	return blocks
}

// shell is one of the quick start's terminals: a bash running a README
// block in its own process group, so that the commands it started end
// with it.
type shell struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startShell runs script with bash in dir, in the background, until the
// test ends.
func startShell(t *testing.T, dir, script string) *shell {
	t.Helper()
	sh := &shell{out: &lockedBuffer{}, done: make(chan struct{})}
	sh.cmd = exec.Command("bash", "-euo", "pipefail", "-c", script)
	sh.cmd.Dir = dir
	sh.cmd.Env = quickstartEnv(dir)
	sh.cmd.Stdout, sh.cmd.Stderr = sh.out, sh.out
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sh.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = sh.cmd.Wait()
		close(sh.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-sh.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGKILL)
			<-sh.done
		}
	})
	return sh
}

// quickstartEnv is the test's environment with Caddy's home and data
// directories inside dir, so that the quick start leaves nothing behind.
func quickstartEnv(dir string) []string {
	return append(os.Environ(),
		"HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
}

// waitListening waits until addr accepts connections, failing with the
// shell's output if the shell ends first.
func waitListening(t *testing.T, sh *shell, addr string) {
	t.Helper()
	testwait.For(t, addr+" to listen", func() bool {
		select {
		case <-sh.done:
			t.Fatalf("the command for %s ended: %s", addr, sh.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestReadmeQuickStart runs the README's quick start as written: its
// Caddyfile, the sink, the gateway and the signed curl, each block with
// bash in a directory where bin/caddy is the built binary. Only the ports
// change (8080, 9090 and 2019 may be taken on a shared machine), the same
// way in every block. It checks the answer, that the sink received the
// event, and that the console lists it.
func TestReadmeQuickStart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s: %v", tool, err)
		}
	}
	blocks := readmeBlocks(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testcaddy.Binary(t), filepath.Join(dir, "bin", "caddy")); err != nil {
		t.Fatal(err)
	}
	site, sink, admin := testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	ports := strings.NewReplacer(
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", site),
		"127.0.0.1:9090", fmt.Sprintf("127.0.0.1:%d", sink),
		"127.0.0.1:2019", fmt.Sprintf("127.0.0.1:%d", admin),
	)
	for name, b := range blocks {
		blocks[name] = ports.Replace(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile.quickstart"), []byte(blocks["caddyfile"]), 0o600); err != nil {
		t.Fatal(err)
	}

	sinkShell := startShell(t, dir, blocks["sink"])
	waitListening(t, sinkShell, fmt.Sprintf("127.0.0.1:%d", sink))
	gateway := startShell(t, dir, blocks["gateway"])
	waitListening(t, gateway, fmt.Sprintf("127.0.0.1:%d", site))

	send := exec.Command("bash", "-euo", "pipefail", "-c", blocks["send"])
	send.Dir = dir
	send.Env = quickstartEnv(dir)
	out, err := send.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start's send block: %v\n%s\ngateway: %s", err, out, gateway.out.String())
	}
	answer := regexp.MustCompile(`\{"status":"delivered","id":"([0-9a-f]{64})"\}\n200\n`).FindSubmatch(out)
	if answer == nil {
		t.Fatalf("no delivered answer with status 200 in:\n%s\ngateway: %s", out, gateway.out.String())
	}
	id := string(answer[1])
	if !regexp.MustCompile(`/usaepay\s+` + id + `\s+transaction\.sale\.success\s+1nftvzx7xtcggm3\s+delivered\s+1\s+200`).Match(out) {
		t.Errorf("caddy webhooks list does not show the event delivered:\n%s", out)
	}

	// The sink received it, once.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/_harness/deliveries", sink))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Deliveries []struct{ Source, ID string }
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Deliveries) != 1 || got.Deliveries[0].Source != "/usaepay" || got.Deliveries[0].ID != id {
		t.Errorf("the sink received %+v, want the one event %s", got.Deliveries, id)
	}

	// The console, with the README's login, lists it.
	if !strings.Contains(blocks["gateway"], "--plaintext console-secret") {
		t.Fatal("the README's console password is no longer console-secret; update this test and the text after the send block")
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/console/events?id=%s", site, id), nil)
	req.SetBasicAuth("operator", "console-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte("1nftvzx7xtcggm3")) || !bytes.Contains(page, []byte("delivered")) {
		t.Errorf("console events page: %d, want the event's subject and status in:\n%s", resp.StatusCode, page)
	}
}
