// The console's browser test, apart from the gateway's module so that its
// browser driver is no requirement of the gateway.
module github.com/webhookgw/caddy-webhook-gateway/console/browsertest

go 1.26.8

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/webhookgw/caddy-webhook-gateway v0.0.0-00010101000000-000000000000
	golang.org/x/crypto v0.58.0
)

require github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect

replace github.com/webhookgw/caddy-webhook-gateway => ../..
