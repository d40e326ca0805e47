package integration

import (
	"net/http"
	"testing"
)

// A sync delivery the backend refuses leaves a trace: the event shows as
// released with the failed attempt, then, once the provider's retry is
// delivered, as delivered with both attempts.
func TestSyncFailedAttemptShownOnDelivery(t *testing.T) {
	gw, be := startSync(t)
	body := fixture(t, "usaepay", "transaction.sale.success")
	id := "c088bc2884a2c3b4043991b04d96ceda7c65043778233dedb26bfd5853705dfd"
	var counts struct {
		Counts map[string]int `json:"counts"`
	}

	be.setStatus(http.StatusBadGateway)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusBadGateway {
		t.Fatalf("backend 502: got %d %v, want 502", code, answer)
	}
	attempts := waitStatus(t, gw, "/usaepay", id, "released")
	if len(attempts) != 1 || attempts[0]["status"] != float64(http.StatusBadGateway) {
		t.Fatalf("released event's attempts: %v", attempts)
	}
	if code := adminGet(t, gw, "/webhooks/counts", &counts); code != http.StatusOK ||
		counts.Counts["released"] != 1 || counts.Counts["reserved"] != 0 {
		t.Fatalf("counts after the failure: %d %v", code, counts.Counts)
	}

	be.setStatus(http.StatusOK)
	if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, usaepayHeaders(body)); code != http.StatusOK || answer["status"] != "delivered" {
		t.Fatalf("the provider's retry: %d %v", code, answer)
	}
	attempts = waitStatus(t, gw, "/usaepay", id, "delivered")
	if len(attempts) != 2 || attempts[0]["status"] != float64(http.StatusBadGateway) || attempts[1]["status"] != float64(http.StatusOK) ||
		attempts[1]["number"] != float64(2) {
		t.Fatalf("delivered event's attempts: %v, want 502 then 200", attempts)
	}
	counts.Counts = nil
	if code := adminGet(t, gw, "/webhooks/counts", &counts); code != http.StatusOK ||
		counts.Counts["released"] != 0 || counts.Counts["delivered"] != 1 {
		t.Fatalf("counts after the retry: %d %v", code, counts.Counts)
	}
	if n := be.count(id); n != 2 {
		t.Fatalf("backend saw the event %d times, want 2", n)
	}
}
