package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// valueLogDiskUse is the disk space the value-log files of the badger
// store in dir take.
func valueLogDiskUse(t *testing.T, dir string) int64 {
	t.Helper()
	return testdisk.Allocated(t, filepath.Join(dir, "*.vlog"))
}

// reclaimSite keeps delivered events for a second and collects the store
// every second.
func reclaimSite(backend string) string {
	return `http://127.0.0.1:{{PORT}} {
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store badger {{DIR}}/store {
				gc_interval 1s
			}
			retention 1s
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			upstream ` + backend + `
			workers 8
			retry {
				` + fastRetry + `
			}
		}
	}
}
`
}

// Delivered events give their disk space back once their retention has
// passed, on a gateway that receives nothing more: the badger store's GC
// schedule (gc_interval) sweeps their payloads and, finding the store idle,
// compacts so that value-log GC can collect them.
//
// Events larger than the store's value threshold (4 KiB) are written to
// Badger's value log. Value-log GC never rewrites the file Badger is
// writing to (64 MiB), so the gateway is restarted once the events are
// delivered: it then writes to a new file, and the one holding the events
// can be collected.
func TestIdleGatewayReclaimsExpiredEvents(t *testing.T) {
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	site := reclaimSite(be.URL)
	gw.Start(site)

	// Over 6 KB of payload an event, written to the value log once.
	pad := strings.Repeat("x", 6<<10)
	const events = 600
	ids := make([]string, events)
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < events; i += 8 {
				id, body := paymentEvent(t)
				body = []byte(strings.Replace(string(body), `"type":"event"`, `"type":"event","pad":"`+pad+`"`, 1))
				ids[i] = id
				code, _, err := send(gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
				if err != nil || code != http.StatusAccepted {
					errs <- fmt.Errorf("event %d answered %d: %v", i, code, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testwait.For(t, "every event delivered", func() bool { return be.allDeliveredOK(ids) })
	gw.Stop()

	dir := filepath.Join(gw.Dir, "store")
	full := valueLogDiskUse(t, dir)
	if full < events*6<<10 {
		t.Fatalf("the value log takes %d bytes: the events did not go to it", full)
	}
	gw.Start(site)
	// What is left: the new file Badger writes to, and the one a rewrite
	// may be filling.
	testwait.For(t, "the value log of the expired events to be collected", func() bool {
		return valueLogDiskUse(t, dir) < full/4
	})
	t.Logf("value log: %d bytes once the events were delivered, %d once they expired", full, valueLogDiskUse(t, dir))
}
