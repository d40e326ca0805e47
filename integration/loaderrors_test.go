package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// A route that cannot load is named in Caddy's error by its Caddyfile file
// and line and its source, not only by its place in Caddy's route tree: an
// empty secret (the variable named too) and a setting that fails
// validation.
func TestLoadErrorNamesTheRoute(t *testing.T) {
	be := newBackend(t)
	cases := []struct {
		name, opts, want string
	}{
		{"empty secret", "auth hmac {env.TEST_UNSET_SECRET}", "TEST_UNSET_SECRET"},
		{"async without upstream", "auth none\n\t\t\tdeliver async", "async delivery needs at least one upstream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := testcaddy.New(t, gatewayEnv...)
			site := fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			auth header X-Loyalty-Token {env.TEST_LOYALTY_TOKEN}
			upstream %s
		}
	}
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			%s
		}
		reverse_proxy %s
	}
}
`, be.URL, tc.opts, be.host())
			err := gw.TryStart(site)
			if err == nil {
				t.Fatal("caddy started with a bad route")
			}
			path := filepath.Join(gw.Dir, "Caddyfile")
			written, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			line := 0
			for i, l := range strings.Split(string(written), "\n") {
				if strings.TrimSpace(l) == "webhook_gateway usaepay {" {
					line = i + 1
				}
			}
			want := fmt.Sprintf("configured at %s:%d (source /usaepay): ", path, line)
			if line == 0 || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the error does not name the route (%q) and the problem (%q):\n%v", want, tc.want, err)
			}
		})
	}
}
