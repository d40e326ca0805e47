package store

import (
	"os/exec"
	"strings"
	"testing"
)

// The contract is what every importer of a store links: it must not pull in
// an engine, nor anything outside the standard library.
func TestContractImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/webhookgw/caddy-webhook-gateway/store"
	for _, dep := range strings.Fields(string(out)) {
		if dep != self {
			t.Errorf("the store contract depends on %s", dep)
		}
	}
}
