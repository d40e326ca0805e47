package integration

import (
	"os/exec"
	"regexp"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// cmd/caddy carries the harness's subcommands next to the built-in ones:
// they come from harness/harnesscmd, which the plugin package leaves out.
func TestCaddyWebhooksSubcommands(t *testing.T) {
	out, err := exec.Command(testcaddy.Binary(t), "webhooks", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy webhooks --help: %v\n%s", err, out)
	}
	for _, name := range []string{"list", "show", "replay", "counts", "purge", "skip", "destinations", "lanes", "pause", "resume", "emit", "sink"} {
		if !regexp.MustCompile(`(?m)^  ` + name + ` `).Match(out) {
			t.Errorf("caddy webhooks --help lists no %s subcommand:\n%s", name, out)
		}
	}
}
