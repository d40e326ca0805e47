#!/usr/bin/env bash
# Builds Caddy with its standard modules plus the webhook gateway.
#
#   scripts/build.sh [FILE]            go build ./cmd/caddy (no extra tools):
#                                      the gateway and the harness's
#                                      `caddy webhooks emit` / `sink`
#   scripts/build.sh --xcaddy [FILE]   xcaddy build at the versions in
#                                      xcaddy.json: the gateway plugin alone
#
# FILE defaults to bin/caddy.
set -euo pipefail
cd "$(dirname "$0")/.."

field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" xcaddy.json | head -n1; }

xcaddy=false
out=bin/caddy
for arg in "$@"; do
	case "$arg" in
	--xcaddy) xcaddy=true ;;
	-*) echo "usage: scripts/build.sh [--xcaddy] [FILE]" >&2; exit 2 ;;
	*) out=$arg ;;
	esac
done
root=$(pwd)
case "$out" in
/*) ;;
*) out="${root}/${out}" ;;
esac

mkdir -p "$(dirname "$out")"
if $xcaddy; then
	caddy_version=$(field caddy_version)
	xcaddy_version=$(field xcaddy_version)
	module=$(field module)
	echo "xcaddy ${xcaddy_version}: caddy ${caddy_version} with ${module}"
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
		--with "${module}=${root}" --output "$out")
else
	go build -o "$out" ./cmd/caddy
fi

modules=$("$out" list-modules)
grep -qx 'http.handlers.webhook_gateway' <<<"$modules" \
	|| { echo "$out lacks http.handlers.webhook_gateway" >&2; exit 1; }
# The harness's commands come with cmd/caddy only (harness/harnesscmd);
# the plugin alone must leave them, and the harness they link, out.
help=$("$out" webhooks --help)
if $xcaddy; then
	if grep -qE '^  (emit|sink) ' <<<"$help"; then
		echo "$out, the plugin alone, has the harness's caddy webhooks emit/sink" >&2
		exit 1
	fi
elif ! grep -qE '^  emit ' <<<"$help"; then
	echo "$out lacks caddy webhooks emit" >&2
	exit 1
fi
echo "built ${out#"$root/"} ($(stat -c %s "$out") bytes)"
