package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// TestSyncKill9MidForwardLeavesNothing kills Caddy while a sync delivery
// waits for the backend: the provider got no answer, and its retry after the
// restart is delivered at once instead of meeting a reservation left behind
// (409 until it expired).
func TestSyncKill9MidForwardLeavesNothing(t *testing.T) {
	be := newBackend(t)
	be.delay = 3 * time.Second
	gw := testcaddy.New(t, gatewayEnv...)
	site := syncSite(be.host())
	gw.Start(site)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"

	first := make(chan error, 1)
	go func() {
		_, _, err := send(gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
		first <- err
	}()
	testwait.For(t, "the first delivery to reach the backend", func() bool { return be.count(id) == 1 })
	gw.Kill()
	if err := <-first; err == nil {
		t.Fatal("the killed request got an answer")
	}

	be.mu.Lock()
	be.delay = 0
	be.mu.Unlock()
	gw.Start(site)
	code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body))
	if code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("the provider's retry after the restart: %d %v, want 200 delivered", code, answer)
	}
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK || answer["status"] != "duplicate" {
		t.Fatalf("once delivered: %d %v", code, answer)
	}
}
