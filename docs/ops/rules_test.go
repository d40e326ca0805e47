// Package opsdocs holds the tests of the alert rules shipped in this
// directory; it has no code of its own.
package opsdocs

import (
	"os/exec"
	"testing"
)

// promtool returns the path of Prometheus's promtool, skipping the test
// where it is not installed (Debian: apt-get install prometheus; CI
// installs it, see .ci/run).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian package prometheus): the alert rules are not checked")
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

// TestAlertRulesCheck: the rules load in Prometheus (syntax, PromQL,
// templates).
func TestAlertRulesCheck(t *testing.T) {
	runPromtool(t, "check", "rules", "alerts.yml")
}

// TestAlertRulesUnit runs alerts_test.yml: series that make each rule
// fire and series that do not.
func TestAlertRulesUnit(t *testing.T) {
	runPromtool(t, "test", "rules", "alerts_test.yml")
}
