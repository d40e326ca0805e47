package integration

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// fullDiskSite is asyncSite with its store on dir, guarded by watermarks
// sized for a 64 MiB disk.
func fullDiskSite(dir, backend string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store badger ` + dir + `/store {
				min_free_space 16MiB
				space_reserve 8MiB
			}
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + backend + `
			workers 8
			timeout 5s
			retry {
				` + fastRetry + `
			}
		}
	}
}
`
}

// The store's disk fills up: new webhooks get 503, the admin API answers,
// stored events are still delivered, a restart on the full disk comes up
// instead of crashing, and once space is freed webhooks are accepted again.
// Every acknowledged event is delivered.
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	mnt := testdisk.Tmpfs(t, "64m")
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	site := fullDiskSite(mnt, be.URL)
	gw.Start(site)
	defer gw.Stop() // before the unmount

	url := gw.BaseURL() + "/hooks/usaepay"
	var accepted []string
	sendOne := func() int {
		t.Helper()
		id, body := freshPaymentEvent(t)
		code, _ := post(t, url, body, signedHeader(body))
		if code == http.StatusAccepted {
			accepted = append(accepted, id)
		}
		return code
	}
	for range 20 {
		if code := sendOne(); code != http.StatusAccepted {
			t.Fatalf("with an empty disk: %d", code)
		}
	}
	testwait.For(t, "the first events delivered", func() bool { return be.allDeliveredOK(accepted) })

	// Events waiting for a backend that fails, then a full disk.
	be.setStatus(http.StatusServiceUnavailable)
	for range 10 {
		if code := sendOne(); code != http.StatusAccepted {
			t.Fatalf("before the disk filled: %d", code)
		}
	}
	filler := testdisk.Fill(t, mnt)
	refused := false
	for range 100 {
		code := sendOne()
		if code == http.StatusServiceUnavailable {
			refused = true
			break
		}
		if code != http.StatusAccepted {
			t.Fatalf("on a full disk: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !refused {
		t.Fatal("a full disk never answered 503")
	}
	var counts struct {
		Total int `json:"total"`
	}
	if code := adminGet(t, gw, "/webhooks/counts", &counts); code != http.StatusOK || counts.Total < len(accepted) {
		t.Fatalf("admin API on a full disk: %d, %d events counted, %d accepted", code, counts.Total, len(accepted))
	}
	be.setStatus(http.StatusOK)
	testwait.For(t, "delivery of the stored events on a full disk", func() bool { return be.allDeliveredOK(accepted) })

	// A restart on the full disk: Caddy comes up and still answers 503.
	gw.Stop()
	gw.Start(site)
	if code := sendOne(); code != http.StatusServiceUnavailable {
		t.Fatalf("after a restart on a full disk: %d", code)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "webhooks accepted again once space was freed", func() bool {
		return sendOne() == http.StatusAccepted
	})
	testwait.For(t, "every acknowledged event delivered", func() bool { return be.allDeliveredOK(accepted) })
}
