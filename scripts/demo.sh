#!/usr/bin/env bash
# The demo: builds Caddy with the gateway, runs it on Caddyfile.example with
# its embedded Badger store (in a temporary data directory), then simulates
# the three providers against it with a merchant sink in front of which the
# gateway delivers, and a second sink for the payment route's second
# destination (the ledger, ordered by transaction), and prints the report:
# each sink must get each acknowledged event exactly once. Loopback only; about a minute:
# a share of loyalty updates is repeated byte for byte after the loyalty
# route's 30 s dedup window (the gateway's default), as a real second update,
# and the payment gateway's retries run its first hour of schedule (12
# retries every 5 minutes) 3600 times faster.
#
#   scripts/demo.sh [extra `caddy webhooks emit` flags, e.g. --count 2000 --sink-fail-share 0.2]
#
# DEMO_BUILD=--xcaddy runs the gateway on the binary the README's xcaddy
# line makes, the plugin alone (bin/caddy-xcaddy); the simulator and sink
# still come from cmd/caddy's bin/caddy, since the plugin leaves them out.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh
gateway=bin/caddy
if [[ "${DEMO_BUILD:-}" == "--xcaddy" ]]; then
	scripts/build.sh --xcaddy bin/caddy-xcaddy
	gateway=bin/caddy-xcaddy
elif [[ -n "${DEMO_BUILD:-}" ]]; then
	echo "DEMO_BUILD is --xcaddy or unset, not ${DEMO_BUILD}" >&2
	exit 2
fi

work=$(mktemp -d)
caddy_pid=""
cleanup() {
	if [[ -n "$caddy_pid" ]] && kill -0 "$caddy_pid" 2>/dev/null; then
		kill -INT "$caddy_pid" 2>/dev/null || true
		wait "$caddy_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# Caddy's data directory, and so the store's default place, goes to the
# temporary directory: the demo leaves nothing behind.
export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# Demo secrets, shared by the gateway (Caddyfile.example) and the simulator.
export LOYALTY_TOKEN="demo-loyalty-token"
export SUBLYTICS_PATH_SECRET="demo-path-secret"
export USAEPAY_USER="demo-merchant" USAEPAY_PASSWORD="demo-password"
export USAEPAY_SIGNATURE_KEY="demo-signature-key"
export GATEWAY_SIGNING_SECRET="whsec_ZGVtby1zaWduaW5nLXNlY3JldC0zMmJ5dGVzISE="
export WEBHOOK_LOYALTY_HEADER_VALUE="$LOYALTY_TOKEN"
export WEBHOOK_SUBLYTICS_SECRET_PATH="$SUBLYTICS_PATH_SECRET"
export WEBHOOK_USAEPAY_PASSWORD="$USAEPAY_PASSWORD"
export WEBHOOK_USAEPAY_SIGNATURE_KEY="$USAEPAY_SIGNATURE_KEY"
export WEBHOOK_SINK_SECRET="$GATEWAY_SIGNING_SECRET"
# The operator console's login (Caddyfile.example's basic_auth takes a bcrypt hash).
console_password="demo-console-password"
CONSOLE_PASSWORD_HASH=$("$gateway" hash-password --plaintext "$console_password")
export CONSOLE_PASSWORD_HASH

"$gateway" run --config Caddyfile.example --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 1 100); do
	if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then break; fi
	if ! kill -0 "$caddy_pid" 2>/dev/null; then
		echo "caddy exited:" >&2
		cat "$work/caddy.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "gateway listening on http://127.0.0.1:8080 (store under $XDG_DATA_HOME/caddy/webhook_gateway)"
echo "operator console: http://127.0.0.1:8080/console/ (user operator, password $console_password)"

status=0
bin/caddy webhooks emit \
	--target http://127.0.0.1:8080 \
	--path openloyalty=/hooks/openloyalty \
	--path sublytics=/hooks/sublytics \
	--path usaepay=/hooks/usaepay \
	--loyalty-header X-Loyalty-Token \
	--usaepay-user "$USAEPAY_USER" \
	--sink-listen 127.0.0.1:9090 \
	--second-sink-listen 127.0.0.1:9091 --second-sink-providers usaepay \
	--count 600 --concurrency 8 \
	--duplicates 0.1 --redeliveries 0.1 \
	--repeats 0.3 --dedup-window 30s \
	--retry-scale 3600 --retry-attempts 13 \
	--burst-pause 100ms \
	--wait 60s --check \
	"$@" || status=$?

# Run interactively, the demo keeps the gateway up so its events can be
# browsed in the console.
if [[ -t 0 ]]; then
	echo
	echo "browse the events at http://127.0.0.1:8080/console/ (user operator, password $console_password)"
	read -r -p "press Enter to stop the gateway " _
fi
exit "$status"
