// Command caddy is Caddy with its standard modules plus the webhook gateway,
// the same binary `xcaddy build --with` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The webhook gateway, imported as xcaddy imports a plugin.
	_ "github.com/webhookgw/caddy-webhook-gateway"
)

func main() {
	caddycmd.Main()
}
