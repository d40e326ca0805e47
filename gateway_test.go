package webhookgateway

import (
	"os/exec"
	"strings"
	"testing"
)

const modulePath = "github.com/webhookgw/caddy-webhook-gateway"

// deps lists the packages the given package is built from (tests aside).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// A plugin build (xcaddy build --with this module) links what this package
// imports: the test harness and the CloudEvents SDK its sink uses must not
// be among it. cmd/caddy, the demo's binary, adds them through
// harness/harnesscmd.
func TestPluginLeavesOutHarness(t *testing.T) {
	for _, pkg := range deps(t, ".") {
		if pkg == modulePath+"/harness" || strings.HasPrefix(pkg, modulePath+"/harness/") ||
			strings.HasPrefix(pkg, "github.com/cloudevents/") || strings.HasPrefix(pkg, "github.com/chromedp/") {
			t.Errorf("the plugin package depends on %s", pkg)
		}
	}

	main := map[string]bool{}
	for _, pkg := range deps(t, "./cmd/caddy") {
		main[pkg] = true
	}
	for _, want := range []string{modulePath, modulePath + "/harness/harnesscmd", modulePath + "/harness/sim",
		modulePath + "/harness/sink", "github.com/cloudevents/sdk-go/v2/protocol/http"} {
		if !main[want] {
			t.Errorf("cmd/caddy does not build in %s", want)
		}
	}
}
