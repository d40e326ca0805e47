// Package webhookgateway is the plugin entry point for xcaddy: importing it
// registers the webhook gateway's Caddy modules, so
// `xcaddy build --with github.com/webhookgw/caddy-webhook-gateway` works as
// for any Caddy plugin. The code lives in the packages below it.
package webhookgateway

import (
	// Registers http.handlers.webhook_gateway, the Caddyfile directive,
	// the admin API and the `caddy webhooks` commands.
	_ "github.com/webhookgw/caddy-webhook-gateway/caddymodule"
)
