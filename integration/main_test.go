package integration

import (
	"os"
	"testing"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcaddy.RemoveBinary()
	os.Exit(code)
}
