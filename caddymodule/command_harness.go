package caddymodule

import (
	"github.com/spf13/cobra"

	"github.com/webhookgw/caddy-webhook-gateway/harness"
)

// The emitting-side harness ships in the same binary, so a merchant can try
// the gateway with nothing else installed: `caddy webhooks emit` simulates
// the providers and `caddy webhooks sink` plays the merchant's backend.
func init() {
	extraWebhookCommands = append(extraWebhookCommands,
		func() *cobra.Command { return harness.EmitCommand() },
		func() *cobra.Command { return harness.SinkCommand() },
	)
}
