package integration

import (
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// A store whose MANIFEST was cut short (a torn write, a bad copy or
// restore) is refused at start, with an error naming its directory, instead
// of being opened without the tables the MANIFEST no longer lists; nothing
// in it is deleted, and with the MANIFEST restored every acknowledged,
// undelivered event is delivered.
func TestTruncatedManifestRefusedAtStart(t *testing.T) {
	be := newBackend(t)
	be.setStatus(http.StatusServiceUnavailable)
	gw := testcaddy.New(t, gatewayEnv...)
	site := asyncSite(be.URL, fastRetry)
	gw.Start(site)

	var acked []string
	for range 200 {
		id, body := paymentEvent(t)
		if code, _ := post(t, gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body)); code != http.StatusAccepted {
			t.Fatalf("webhook answered %d", code)
		}
		acked = append(acked, id)
	}
	gw.Stop()

	dir := filepath.Join(gw.Dir, "store")
	path := filepath.Join(dir, "MANIFEST")
	manifest, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(manifest)-1)); err != nil {
		t.Fatal(err)
	}
	before := testdisk.Files(t, dir)
	err = gw.TryStart(site)
	if err == nil {
		t.Fatal("the gateway started on a store whose MANIFEST is one byte short")
	}
	// The events were flushed into one table at the stop, the last change
	// the MANIFEST records: one byte short, it no longer lists the table.
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "does not account for") {
		t.Fatalf("the refusal does not name the damaged directory: %v", err)
	}
	if after := testdisk.Files(t, dir); !maps.Equal(before, after) {
		t.Fatalf("the refused start changed the store:\nbefore %v\nafter  %v", before, after)
	}

	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	be.setStatus(http.StatusOK)
	gw.Start(site)
	testwait.For(t, "every acknowledged event delivered once the MANIFEST is restored", func() bool {
		return be.allDeliveredOK(acked)
	})
}
