package integration

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Caddyfile.example mounts the operator console behind basic_auth.
func TestExampleMountsTheConsole(t *testing.T) {
	be := newBackend(t)
	gw := startExample(t, be.URL)
	get := func(path string, auth bool) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, gw.BaseURL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth {
			req.SetBasicAuth("operator", "example-console-password")
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, _ := get("/console/", false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("console without credentials: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get("/console", false); resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/console/" {
		t.Errorf("/console: %d to %q, want a redirect to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get("/console/", true)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="dead-events"`) || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("console with credentials: %d\n%s", resp.StatusCode, body)
	}
}

// Caddyfile.example's comment promises a console on loopback only: its
// server listens on 127.0.0.1, not on every interface, and a connection to
// another address of this machine is refused.
func TestExampleListensOnLoopbackOnly(t *testing.T) {
	be := newBackend(t)
	gw := startExample(t, be.URL)
	resp, err := http.Get(gw.AdminURL() + "/config/apps/http/servers")
	if err != nil {
		t.Fatal(err)
	}
	var servers map[string]struct{ Listen []string }
	err = json.NewDecoder(resp.Body).Decode(&servers)
	resp.Body.Close()
	if err != nil || len(servers) == 0 {
		t.Fatalf("reading the servers' config: %v (%d servers)", err, len(servers))
	}
	for name, s := range servers {
		for _, l := range s.Listen {
			if !strings.HasPrefix(l, "127.0.0.1:") && !strings.HasPrefix(l, "tcp/127.0.0.1:") {
				t.Errorf("server %s listens on %q, want loopback only", name, l)
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		addr := net.JoinHostPort(ipn.IP.String(), strconv.Itoa(gw.Port))
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("the example's site accepts connections on %s", addr)
		}
	}
}
