// Package webhookgateway is the plugin entry point for xcaddy: importing it
// registers the webhook gateway's Caddy modules, so
// `xcaddy build --with github.com/webhookgw/caddy-webhook-gateway` works as
// for any Caddy plugin. The code lives in the packages below it.
//
// The plugin leaves out the test harness (provider simulator, merchant sink)
// and its commands; package harness/harnesscmd adds them to a Caddy main
// that wants them, as cmd/caddy does.
package webhookgateway

import (
	// Registers http.handlers.webhook_gateway, the Caddyfile directive,
	// the admin API and the `caddy webhooks` commands that work on stored
	// events.
	_ "github.com/webhookgw/caddy-webhook-gateway/caddymodule"
)
