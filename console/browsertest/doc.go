// Package browsertest drives the operator console in headless Chromium
// against a real Caddy (see browser_test.go). It is a module of its own so
// that chromedp, which only this test needs, stays out of the gateway's
// go.mod and so out of the module graph of every Caddy build that includes
// the gateway. Run it from this directory:
//
//	go test -race -count=1 ./...
package browsertest
