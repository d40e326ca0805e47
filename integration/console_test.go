package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
