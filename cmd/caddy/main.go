// Command caddy is Caddy with its standard modules plus the webhook gateway,
// the binary `xcaddy build --with` produces, plus the harness's
// `caddy webhooks emit` and `caddy webhooks sink`, which the demo and the
// tests drive the gateway with.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The webhook gateway, imported as xcaddy imports a plugin.
	_ "github.com/webhookgw/caddy-webhook-gateway"

	// The harness's commands, which a plugin build leaves out.
	_ "github.com/webhookgw/caddy-webhook-gateway/harness/harnesscmd"
)

func main() {
	caddycmd.Main()
}
