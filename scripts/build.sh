#!/usr/bin/env bash
# Builds bin/caddy: Caddy with its standard modules plus the webhook gateway.
#
#   scripts/build.sh            go build ./cmd/caddy (no extra tools)
#   scripts/build.sh --xcaddy   xcaddy build at the versions in xcaddy.json
set -euo pipefail
cd "$(dirname "$0")/.."

field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" xcaddy.json | head -n1; }

mkdir -p bin
if [[ "${1:-}" == "--xcaddy" ]]; then
	caddy_version=$(field caddy_version)
	xcaddy_version=$(field xcaddy_version)
	module=$(field module)
	echo "xcaddy ${xcaddy_version}: caddy ${caddy_version} with ${module}"
	root=$(pwd)
	pinned=$(sed -n 's/^require github.com\/caddyserver\/xcaddy \(.*\)$/\1/p' tools/xcaddy/go.mod)
	if [[ "$pinned" != "$xcaddy_version" ]]; then
		echo "xcaddy.json names xcaddy ${xcaddy_version} but tools/xcaddy/go.mod pins ${pinned}" >&2
		exit 1
	fi
	# The gateway module is built from this checkout, not fetched: a module
	# proxy that refuses unknown modules with 403 (rather than 404) would
	# stop xcaddy's `go get`, so let lookups fall through to "off", which
	# makes the go command use the local replacement.
	proxy=$(go env GOPROXY)
	proxy="${proxy%%,*}|off"
	(cd tools/xcaddy && GOPROXY="$proxy" go run github.com/caddyserver/xcaddy/cmd/xcaddy build "${caddy_version}" \
		--with "${module}=${root}" --output "${root}/bin/caddy")
else
	go build -o bin/caddy ./cmd/caddy
fi
bin/caddy list-modules | grep -qx 'http.handlers.webhook_gateway' \
	|| { echo "bin/caddy lacks http.handlers.webhook_gateway" >&2; exit 1; }
echo "built bin/caddy"
