package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

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
	for _, want := range []string{"transaction.sale.success\n", "  id  ", "a1", "/usaepay (provider usaepay)", "received   2026-03-01T12:00:00Z", "retention  until purged", "none yet", "User-Agent: provider/1.0", `"specversion": "1.0"`, `"event_id":"a1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0001-01-01") {
		t.Errorf("show prints an unset time:\n%s", out)
	}

	out, err = runCLI(t, "show", "--address", addr, "--json", "/usaepay", "a1")
	if err != nil {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	var shown shownEvent
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.ID != "a1" || shown.RawBody == "" {
		t.Fatalf("show --json is not the event JSON: %v\n%s", err, out)
	}
	if strings.Contains(out, "0001-01-01") || strings.Contains(out, `"retention":`) || !strings.Contains(out, `"retention_ms": `) ||
		!strings.Contains(out, `"received_at": "2026-03-01T12:00:00Z"`) {
		t.Errorf("show --json: want unset times left out, retention in ms, times in RFC 3339:\n%s", out)
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
	var dryAll ops.BulkReplayResponse
	if err := json.Unmarshal([]byte(out), &dryAll); err != nil || !dryAll.DryRun || len(dryAll.Results) != 1 || len(f.backend.received()) != 0 {
		t.Fatalf("dry run output: %v\n%s", err, out)
	}
	dry := *dryAll.Results[0]
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

// show prints a dead event's reason and its attempts in human units, and
// --json the durations in milliseconds.
func TestCLIShowDeadEvent(t *testing.T) {
	f := newAdminFixture(t)
	ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "d1", "source": "/usaepay", "type": "ach.settled", "subject": "tx-42"})
	rec := &store.Record{
		Source: "/usaepay", ID: "d1", Provider: "usaepay", Type: "ach.settled", ReceivedAt: adminT0,
		Event: ev, Retention: 36 * time.Hour, Deliveries: []store.Delivery{{Destination: "/usaepay"}},
	}
	ctx := context.Background()
	if res, err := f.db.Insert(ctx, &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{rec}}, true); err != nil || !res[0].Inserted {
		t.Fatalf("insert: %v %+v", err, res)
	}
	if c, err := f.db.Claim(ctx, "test", []string{"/usaepay"}, time.Now(), time.Minute, 1); err != nil || len(c) != 1 {
		t.Fatalf("claim: %v %+v", err, c)
	}
	gone := store.Attempt{Number: 1, At: adminT0.Add(time.Second), Status: 410, Latency: 3200 * time.Microsecond, Error: "410 Gone"}
	if err := f.db.RecordAttempt(ctx, "/usaepay", "d1", "/usaepay", "test", gone, store.Dead(store.DeadGone)); err != nil {
		t.Fatal(err)
	}
	addr := adminServer(t)
	out, err := runCLI(t, "show", "--address", addr, "/usaepay", "d1")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, out)
	}
	for _, want := range []string{"ach.settled  subject tx-42\n", "why dead  the backend answered 410 Gone", "2026-03-01T12:00:01Z  410     3.2ms", "retention  36h once delivered"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, "show", "--address", addr, "--json", "/usaepay", "d1")
	if err != nil || !strings.Contains(out, `"latency_ms": 3.2`) || !strings.Contains(out, `"retention_ms": 129600000`) || !strings.Contains(out, `"dead_reason": "gone"`) {
		t.Errorf("show --json: %v\n%s", err, out)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                          "0s",
		3200 * time.Microsecond:    "3.2ms",
		1500 * time.Millisecond:    "1.5s",
		90 * time.Second:           "1m30s",
		2 * time.Minute:            "2m",
		2 * time.Hour:              "2h",
		90 * time.Minute:           "1h30m",
		36 * time.Hour:             "36h",
		168 * time.Hour:            "7d",
		time.Hour + 10*time.Second: "1h0m10s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// --id selects one event with --source and is refused without it; --subject
// alone is a filter for purge, not the empty filter it refuses.
func TestCLIIDAndSubjectFlags(t *testing.T) {
	f := newAdminFixture(t)
	f.insert(t, "/usaepay", "a1", "usaepay", "transaction.sale.success", store.StatusDead, adminT0)
	f.insert(t, "/usaepay", "a2", "usaepay", "transaction.sale.success", store.StatusDead, adminT0)
	addr := adminServer(t)

	out, err := runCLI(t, "list", "--address", addr, "--source", "/usaepay", "--id", "a2")
	if err != nil || strings.Contains(out, "a1") || !strings.Contains(out, "a2") || !strings.Contains(out, "SUBJECT") {
		t.Fatalf("list --source --id: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "list", "--address", addr, "--id", "a2"); err == nil || !strings.Contains(err.Error()+out, "source") {
		t.Fatalf("list --id without --source: %v\n%s", err, out)
	}
	out, err = runCLI(t, "purge", "--address", addr, "--subject", "nobody")
	if err != nil || !strings.Contains(out, "purged 0 events") {
		t.Fatalf("purge --subject of an unknown subject: %v\n%s", err, out)
	}
	out, err = runCLI(t, "purge", "--address", addr, "--source", "/usaepay", "--id", "a1")
	if err != nil || !strings.Contains(out, "purged 1 event") {
		t.Fatalf("purge --source --id: %v\n%s", err, out)
	}
	if _, err := f.db.Get(context.Background(), "/usaepay", "a2"); err != nil {
		t.Fatalf("a2, received at the same time, went with a1: %v", err)
	}
}
