// Package harnesscmd adds the harness's commands to Caddy's command line:
// `caddy webhooks emit` (the provider simulator) and `caddy webhooks sink`
// (the merchant backend). Import it for its side effect in a Caddy main,
// as cmd/caddy does:
//
//	import _ "github.com/webhookgw/caddy-webhook-gateway/harness/harnesscmd"
//
// or add it to an xcaddy build with a second --with. The gateway plugin
// itself does not import it, so a plugin build carries neither the harness
// nor the CloudEvents SDK its sink parses deliveries with.
package harnesscmd

import (
	"github.com/webhookgw/caddy-webhook-gateway/caddymodule"
	"github.com/webhookgw/caddy-webhook-gateway/harness"
)

func init() {
	caddymodule.RegisterWebhooksCommand(harness.EmitCommand)
	caddymodule.RegisterWebhooksCommand(harness.SinkCommand)
}
