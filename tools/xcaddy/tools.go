//go:build tools

// Package tools records the build tools this module pins.
package tools

import _ "github.com/caddyserver/xcaddy/cmd/xcaddy"
