package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// adminServer serves the admin routes on loopback, as Caddy's admin
// endpoint would, and returns its address for --address.
func adminServer(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	for _, route := range new(AdminAPI).Routes() {
		mux.Handle(route.Pattern, adminErrors(route.Handler))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// runCLI runs `caddy webhooks <args>` and returns its output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := webhooksCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestCLIListCountsShow(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "transaction.sale.success", store.StatusPending, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "ach.settled", store.StatusDead, adminT0.Add(1))
	addr := adminServer(t)

	out, err := runCLI(t, "list", "--address", addr)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	for _, want := range []string{"RECEIVED", "STATUS", "a1", "a2", "transaction.sale.success", "dead", "2026-03-01T12:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}

	out, err = runCLI(t, "list", "--address", addr, "--status", "dead", "--limit", "1")
	if err != nil || strings.Contains(out, "a1") || !strings.Contains(out, "a2") {
		t.Fatalf("filtered list: %v\n%s", err, out)
	}

	out, err = runCLI(t, "list", "--address", addr, "--limit", "1")
	if err != nil || !strings.Contains(out, "more: --cursor ") {
		t.Fatalf("paged list should print the cursor: %v\n%s", err, out)
	}

	out, err = runCLI(t, "counts", "--address", addr)
	if err != nil {
		t.Fatalf("counts: %v\n%s", err, out)
	}
	for _, want := range []string{"pending", "dead", "total", f.dir} {
		if !strings.Contains(out, want) {
			t.Errorf("counts output lacks %q:\n%s", want, out)
		}
	}

	out, err = runCLI(t, "show", "--address", addr, "/usaepay", "a1")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, out)
	}
	var shown shownEvent
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.ID != "a1" || shown.RawBody == "" {
		t.Fatalf("show is not the event JSON: %v\n%s", err, out)
	}

	out, err = runCLI(t, "show", "--address", addr, "/usaepay", "missing")
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no event /usaepay missing") {
		t.Fatalf("show of an unknown event: %v\n%s", err, out)
	}
}

func TestCLIReplay(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "x", store.StatusDead, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "x", store.StatusDead, adminT0)
	addr := adminServer(t)

	out, err := runCLI(t, "replay", "--address", addr, "--dry-run", "/usaepay", "a1")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	var dry delivery.ReplayResult
	if err := json.Unmarshal([]byte(out), &dry); err != nil || !dry.DryRun || len(f.backend.received()) != 0 {
		t.Fatalf("dry run output: %v\n%s", err, out)
	}
	f.noFullSignature(t, []byte(out), dry.Header, "/usaepay", "a1")
	if dry.Destination != "/usaepay" || dry.Redirected {
		t.Fatalf("dry run to the event's own destination: %+v", dry)
	}
	out, err = runCLI(t, "replay", "--address", addr, "--dry-run", "--destination", "nowhere", "/usaepay", "a1")
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), `destination \"nowhere\"`) {
		t.Fatalf("replay to a destination no route delivers to: %v\n%s", err, out)
	}

	out, err = runCLI(t, "replay", "--address", addr, "--status", "dead")
	if err != nil {
		t.Fatalf("replay by filter: %v\n%s", err, out)
	}
	var bulk ops.BulkReplayResponse
	if err := json.Unmarshal([]byte(out), &bulk); err != nil || bulk.Delivered != 2 || len(f.backend.received()) != 2 {
		t.Fatalf("bulk replay output: %v\n%s", err, out)
	}

	for _, args := range [][]string{
		{"replay", "--address", addr},
		{"replay", "--address", addr, "/usaepay"},
		{"replay", "--address", addr, "--status", "dead", "/usaepay", "a1"},
		{"purge", "--address", addr},
	} {
		if out, err := runCLI(t, args...); err == nil {
			t.Errorf("%v should fail:\n%s", args, out)
		}
	}
	if len(f.backend.received()) != 2 {
		t.Fatal("refused commands reached the backend")
	}

	out, err = runCLI(t, "purge", "--address", addr, "--status", "delivered")
	if err != nil || !strings.Contains(out, "purged 2 events") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
}

func TestRegisterWebhooksCommand(t *testing.T) {
	extraWebhookCommandsMu.Lock()
	saved := extraWebhookCommands
	extraWebhookCommands = map[string]func() *cobra.Command{}
	extraWebhookCommandsMu.Unlock()
	t.Cleanup(func() {
		extraWebhookCommandsMu.Lock()
		extraWebhookCommands = saved
		extraWebhookCommandsMu.Unlock()
	})

	probe := func() *cobra.Command { return &cobra.Command{Use: "probe <arg>", Short: "test"} }
	RegisterWebhooksCommand(probe)
	names := map[string]bool{}
	for _, c := range webhooksCommand().Commands() {
		names[c.Name()] = true
	}
	for _, want := range []string{"list", "show", "replay", "counts", "purge", "probe"} {
		if !names[want] {
			t.Errorf("webhooks has no %s subcommand: %v", want, names)
		}
	}
	// Each command tree gets a command of its own.
	find := func() *cobra.Command { c, _, _ := webhooksCommand().Find([]string{"probe"}); return c }
	if a, b := find(), find(); a == nil || a == b {
		t.Errorf("two command trees share their probe subcommand (or have none): %p %p", a, b)
	}

	for name, newCmd := range map[string]func() *cobra.Command{
		"nil":       nil,
		"unnamed":   func() *cobra.Command { return &cobra.Command{Short: "test"} },
		"built-in":  func() *cobra.Command { return &cobra.Command{Use: "list", Short: "test"} },
		"duplicate": probe,
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("registering a %s command did not panic", name)
				}
			}()
			RegisterWebhooksCommand(newCmd)
		})
	}
}
