package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness"
	"github.com/webhookgw/caddy-webhook-gateway/harness/report"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// Demo secrets: the same names Caddyfile.example reads.
const demoSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var exampleEnv = []string{
	"LOYALTY_TOKEN=" + loyaltyToken,
	"SUBLYTICS_PATH_SECRET=" + sublyticsToken,
	"USAEPAY_USER=" + basicUser,
	"USAEPAY_PASSWORD=" + basicPass,
	"USAEPAY_SIGNATURE_KEY=" + sigKey,
	"GATEWAY_SIGNING_SECRET=" + demoSigningSecret,
	// bcrypt of "example-console-password", for the console's basic_auth.
	"CONSOLE_PASSWORD_HASH=$2a$10$i2Qww3utjXtfLiZGhCo4t.6DhDBXhEcrXjjzYnXcMuhfGfRCf7.vy",
}

// startExample runs Caddyfile.example itself on free ports, with the
// embedded store in its default place under Caddy's data directory, in front
// of the given backend.
func startExample(t *testing.T, backendURL string) *testcaddy.Instance {
	t.Helper()
	return startExampleWithLedger(t, backendURL, backendURL)
}

// startExampleWithLedger is startExample with the payment route's second
// destination, the ledger, delivering to ledgerURL.
func startExampleWithLedger(t *testing.T, backendURL, ledgerURL string) *testcaddy.Instance {
	t.Helper()
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	gw := testcaddy.New(t, append(exampleEnv, "MERCHANT_BACKEND="+backendURL, "LEDGER_BACKEND="+ledgerURL)...)
	gw.Raw = true
	cfg := strings.NewReplacer(
		"admin 127.0.0.1:2019", fmt.Sprintf("admin 127.0.0.1:%d", gw.Admin),
		"http://127.0.0.1:8080", fmt.Sprintf("http://127.0.0.1:%d", gw.Port),
	).Replace(string(example))
	if cfg == string(example) {
		t.Fatal("Caddyfile.example no longer has the addresses this test rewrites")
	}
	gw.Start(cfg)
	return gw
}

func exampleProviders() map[string]sim.ProviderConfig {
	return map[string]sim.ProviderConfig{
		"openloyalty": {Path: "/hooks/openloyalty", HeaderName: loyaltyHeader, HeaderValue: loyaltyToken},
		"sublytics":   {Path: "/hooks/sublytics", SecretPath: sublyticsToken},
		"usaepay":     {Path: "/hooks/usaepay", BasicUser: basicUser, BasicPassword: basicPass, SignatureKey: sigKey},
	}
}

// TestEndToEndExample drives Caddyfile.example with the harness: all three
// providers, duplicates and redeliveries, and a sink that fails a share of
// deliveries and refuses all of them for a while; the payment route's
// second destination, the ledger, has a sink of its own failing a share
// too. Nothing acknowledged may be lost and nothing may be delivered twice,
// to either destination.
func TestEndToEndExample(t *testing.T) {
	sk, err := harness.NewSink(sink.Config{
		Secrets: []string{demoSigningSecret},
		Faults: sink.Faults{
			FailShare:   0.2,
			RefuseAfter: 300 * time.Millisecond,
			RefuseFor:   700 * time.Millisecond,
		},
		Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sink.Listen("127.0.0.1:0", sk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	ledgerSink, err := harness.NewSink(sink.Config{
		Secrets: []string{demoSigningSecret},
		Faults:  sink.Faults{FailShare: 0.2},
		Seed:    11,
	})
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := sink.Listen("127.0.0.1:0", ledgerSink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ledger.Shutdown(context.Background()) })

	gw := startExampleWithLedger(t, srv.URL, ledger.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := harness.Run(ctx, harness.Scenario{
		Gateway: gw.BaseURL(),
		UseSink: srv,
		Sim: sim.Config{
			Providers:       exampleProviders(),
			Count:           300,
			Concurrency:     8,
			DuplicateShare:  0.1,
			RedeliveryShare: 0.1,
			Retry:           sim.RetryPolicy{Attempts: 13},
			BurstSize:       20,
			BurstPause:      50 * time.Millisecond,
		},
		Wait:   report.WaitOptions{Timeout: time.Minute},
		Second: &harness.SecondSink{Name: "ledger", Use: ledger, Providers: []string{"usaepay"}},
	})
	if rep != nil {
		t.Logf("\n%s", rep.Table())
		if rep.Second != nil {
			for _, k := range rep.Second.LostKeys {
				ev, _ := showEvent(t, gw, k.Source, k.ID)
				t.Logf("lost at the ledger: %s: %s %+v", k, ev.Status, ev.Deliveries)
			}
			if len(rep.Second.LostKeys) > 0 {
				for _, l := range strings.Split(gw.Output(), "\n") {
					if strings.Contains(l, "ledger") && !strings.Contains(l, "delivery attempt failed") {
						t.Log(l)
					}
				}
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.Doubled != 0 {
		t.Fatalf("lost %d, doubled %d: want 0 and 0", rep.Lost, rep.Doubled)
	}
	if l := rep.Second; l.Lost != 0 || l.Doubled != 0 || l.InvalidAtSink != 0 || l.AckedEvents == 0 || l.Delivered < l.AckedEvents {
		t.Fatalf("ledger: lost %d, doubled %d, invalid %d, acknowledged %d, delivered %d", l.Lost, l.Doubled, l.InvalidAtSink, l.AckedEvents, l.Delivered)
	}
	if rep.InvalidAtSink != 0 {
		t.Fatalf("%d deliveries failed the sink's CloudEvents, schema or signature checks", rep.InvalidAtSink)
	}
	if rep.AckedEvents == 0 || rep.Delivered < rep.AckedEvents || rep.Unexpected != 0 {
		t.Fatalf("acknowledged %d events, delivered %d, unexpected %d", rep.AckedEvents, rep.Delivered, rep.Unexpected)
	}
}
