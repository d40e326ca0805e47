#!/usr/bin/env bash
# Load benchmark of the webhook gateway against stock Caddy, in one run with
# the same load generator, payloads and machine state for every scenario:
#
#   (a) Caddy reverse_proxy to the backend                    c=32 and c=128
#   (b) webhook_gateway (sync) + the same reverse_proxy       c=32
#   (c) webhook_gateway (async, 202 after fsync) + delivery   c=128
#   (p) (c) on the PostgreSQL store (202 after commit)         c=128
#   (t) (b) under Caddy's tracing, every request sampled       c=32
#   (u) (c) under Caddy's tracing, every request sampled       c=128
#   (f) (c) fanning out to two destinations (two deliveries)   c=128
#   (o) (c) with its destination ordered by subject, 1,000 keys c=128
#
# for 1 KB and 12 KB payment gateway events, each signed and with a unique
# event_id. Every measurement gets a fresh Caddy process and store
# directory; the order of the scenarios rotates from run to run so none
# always follows the same neighbour. Results: one JSON report per
# measurement, and summary.md / summary.json with medians over the runs
# and ratios to (a).
#
# Usage: bench/run.sh [--quick] [--runs N] [--duration 10s] [--warmup 2s]
#                     [--workers N] [--rev REV] [--profile] [--only LIST]
#                     [--out DIR]
#
#   --quick      smoke mode: 1 run of 3 s after 1 s of warm-up
#   --rev REV    build Caddy from this git revision (a clean export) instead
#                of the working tree, so edits in progress do not leak in
#   --profile    also save a CPU profile of Caddy (admin /debug/pprof) for
#                each measurement, and a heap profile four fifths through
#                (BENCH_TRACE=1: and a 2 s execution trace); pprof costs a
#                little CPU, so take profiles in a run of their own rather
#                than the reference one
#   --only LIST  comma-separated subset of a32,b32,a128,c128,p128,t32,u128,
#                f128,o128 (t and u, tracing on, and f and o, fan-out and
#                ordered lanes, are not in the default list: add them to
#                compare with b and c in the same run)
#                (p needs PostgreSQL: BENCH_PG_DSN, default the loopback
#                server of the tests; skipped when it does not answer)
#   --sizes LIST body sizes in bytes (default "1024 12288")
#   --workers N  async delivery workers (default 64)
#   --drain-timeout 60s  bound on waiting for async delivery after the load
#   --open       the open-loop run instead (see "open loop" below): the
#                proxy's capacity, then a fixed rate at 25% and 50% of it,
#                and the concurrency-1 scenarios
#   --memory     the memory-under-load run instead (see "open loop" below)
#   --open-shares "0.25 0.5"  --open-only a,b,c,p  --open-lone a1,b1,c1
#   --memory-rate 1500  --memory-duration 75s   (their defaults)
#
# Everything listens on 127.0.0.1 only; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
DURATION=10s
WARMUP=2s
WORKERS=64
REV=""
PROFILE=0
ONLY="a32,b32,a128,c128,p128"
SIZES="1024 12288"
OUT=""
DRAIN_TIMEOUT=60
OPEN_MODE=""             # --open or --memory: run open_loop_run instead
OPEN_SHARES="0.25 0.5"   # rates of the open loop, shares of the capacity
OPEN_ONLY="a,b,c,p"      # scenarios of the open loop
OPEN_LONE="a1,b1,c1"     # concurrency-1 scenarios of --open
OPEN_INFLIGHT=256        # in-flight cap of the open loop
MEMORY_RATE=1500         # --memory: events per second
MEMORY_DURATION=75s      # --memory: ~110,000 events held in the backlog
EXTRA_ARGS=()            # more loadgen arguments for the next measure
LABEL_EXTRA=""           # and a suffix for its label
UPSTREAM_PORT=""         # the gateway's upstream, when not the backend

# seconds turns a Go duration of whole seconds ("10s") into a number.
seconds() { local s=${1%s}; [[ $s =~ ^[0-9]+$ ]] || { echo "durations are whole seconds, like 10s: $1" >&2; exit 2; }; echo "$s"; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) RUNS=1 DURATION=3s WARMUP=1s DRAIN_TIMEOUT=20 ;;
	--runs) RUNS=$2; shift ;;
	--duration) DURATION=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--workers) WORKERS=$2; shift ;;
	--rev) REV=$2; shift ;;
	--profile) PROFILE=1 ;;
	--only) ONLY=$2; shift ;;
	--drain-timeout) DRAIN_TIMEOUT=$(seconds "$2"); shift ;;
	--sizes) SIZES=$2; shift ;;
	--open) OPEN_MODE=open ;;
	--memory) OPEN_MODE=memory ;;
	--open-shares) OPEN_SHARES=$2; shift ;;
	--open-only) OPEN_ONLY=$2; shift ;;
	--open-lone) OPEN_LONE=$2; shift ;;
	--memory-rate) MEMORY_RATE=$2; shift ;;
	--memory-duration) MEMORY_DURATION=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "unknown argument: $1" >&2; usage 2 ;;
	esac
	shift
done

DUR_S=$(seconds "$DURATION")
WARM_S=$(seconds "$WARMUP")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/webhook-bench.XXXXXX")
BIN=${BENCH_BIN:-$ROOT/bin/bench}
OUT=${OUT:-$ROOT/bin/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BIN" "$OUT"

STARTED=() # processes this script started, stopped on exit
cleanup() {
	local p
	for p in "${STARTED[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${STARTED[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$OUT/run.log" >&2; }

# --- build -----------------------------------------------------------------
log "building loadgen, backend and caddy into $BIN"
(cd "$ROOT" && go build -o "$BIN/loadgen" ./bench/loadgen && go build -o "$BIN/backend" ./bench/backend)
if [ -n "$REV" ]; then
	SRC="$WORK/src"
	mkdir -p "$SRC"
	git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$SRC"
	BUILT_FROM="$(git -C "$ROOT" rev-parse --short "$REV")"
else
	SRC="$ROOT"
	BUILT_FROM="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) (working tree)"
fi
(cd "$SRC" && go build -o "$BIN/caddy" ./cmd/caddy)
# The Caddyfiles that go with the binary: a revision's own, since its
# directives may differ from the tree's; the tree's for one that has none.
CONFIGS="$SRC/bench"
[ -f "$CONFIGS/sync.Caddyfile" ] || CONFIGS="$ROOT/bench"

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "gateway: $BUILT_FROM"
	echo "caddy: $("$BIN/caddy" version | head -1)"
	echo "go: $(go version)"
	echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "mode: ${OPEN_MODE:+--$OPEN_MODE (shares $OPEN_SHARES of $OPEN_ONLY, lone $OPEN_LONE; memory $MEMORY_RATE/s for $MEMORY_DURATION) }runs=$RUNS duration=$DURATION warmup=$WARMUP workers=$WORKERS sizes=$SIZES only=$ONLY profile=$PROFILE"
	echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

# --- helpers ---------------------------------------------------------------

# free_port prints a loopback port nobody listens on, below the usual
# ephemeral range (32768 and up) so that no outgoing connection takes it
# between the check and Caddy's bind; start_caddy retries a clash anyway.
free_port() {
	local p i lo hi
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || lo=32768
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % (lo - 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# wait_gone waits up to $2 seconds for process $1 to exit, then kills it.
wait_gone() {
	local pid=$1 limit=$(($2 * 10)) i
	for ((i = 0; i < limit; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local kept=()
	for i in "${STARTED[@]}"; do
		[ "$i" = "$pid" ] || kept+=("$i")
	done
	STARTED=("${kept[@]}")
}

# PostgreSQL for scenario (p): each measurement gets a schema of its own,
# dropped afterwards.
export BENCH_PG_DSN=${BENCH_PG_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
PG_OK=0
if [[ ,$ONLY, == *,p* ]] || [[ $OPEN_MODE == open && ,$OPEN_ONLY, == *,p* ]]; then
	if psql "$BENCH_PG_DSN" -qAtc 'SELECT 1' >/dev/null 2>&1; then
		PG_OK=1
		echo "postgres: $(psql "$BENCH_PG_DSN" -qAtc 'SELECT version()' | cut -d' ' -f1-2), synchronous_commit on" >>"$OUT/meta.txt"
	else
		log "no PostgreSQL at BENCH_PG_DSN: scenario (p) skipped"
	fi
fi

KEY=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export BENCH_SIG_KEY=$KEY

"$BIN/backend" >"$WORK/backend.addr" 2>"$WORK/backend.log" &
BACKEND_PID=$!
STARTED+=("$BACKEND_PID")
for _ in $(seq 1 50); do
	[ -s "$WORK/backend.addr" ] && break
	sleep 0.1
done
BACKEND_ADDR=$(head -1 "$WORK/backend.addr")
[ -n "$BACKEND_ADDR" ] || { echo "backend did not start" >&2; cat "$WORK/backend.log" >&2; exit 1; }
log "backend on $BACKEND_ADDR"

CADDY_PID=""
PORT=""
ADMIN=""

# start_caddy runs Caddy on a Caddyfile from bench/ with a fresh data and
# store directory, and waits until the site accepts connections. A port
# taken between free_port and Caddy's bind gets new ports and a retry.
start_caddy() {
	local attempt
	for attempt in 1 2 3; do
		rm -rf "$2"
		if start_caddy_once "$1" "$2"; then
			return 0
		fi
		grep -q "address already in use" "$2/caddy.log" 2>/dev/null || return 1
		log "port clash, retrying"
	done
	return 1
}

start_caddy_once() {
	local caddyfile=$1 dir=$2
	mkdir -p "$dir/data" "$dir/store" "$dir/config"
	PORT=$(free_port)
	ADMIN=$(free_port)
	# The exporter of the traced scenarios (the others have no tracing
	# directive, so these go unused there).
	OTEL_TRACES_EXPORTER=${BENCH_OTEL_EXPORTER:-otlp} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
		OTEL_EXPORTER_OTLP_ENDPOINT="http://$BACKEND_ADDR" OTEL_TRACES_SAMPLER=always_on \
		BENCH_PORT=$PORT BENCH_ADMIN_PORT=$ADMIN BENCH_DATA="$dir/data" BENCH_STORE="$dir/store" \
		BENCH_BACKEND_PORT=${UPSTREAM_PORT:-${BACKEND_ADDR##*:}} BENCH_WORKERS=$WORKERS \
		XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		"$BIN/caddy" run --config "$CONFIGS/$caddyfile" --adapter caddyfile >"$dir/caddy.log" 2>&1 &
	CADDY_PID=$!
	STARTED+=("$CADDY_PID")
	local i
	for i in $(seq 1 300); do
		if ! kill -0 "$CADDY_PID" 2>/dev/null; then
			wait_gone "$CADDY_PID" 1
			echo "caddy exited during start-up:" >&2
			tail -3 "$dir/caddy.log" >&2
			return 1
		fi
		if curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN/config/" 2>/dev/null &&
			(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "caddy did not become ready in 30 s" >&2
	tail -20 "$dir/caddy.log" >&2
	stop_caddy
	return 1
}

stop_caddy() {
	kill -TERM "$CADDY_PID" 2>/dev/null || true
	wait_gone "$CADDY_PID" 20
}

# measure <scenario a|b|c> <concurrency> <body bytes> <run>
N=0
measure() {
	local scenario=$1 conc=$2 size=$3 run=$4 caddyfile mode
	case $scenario in
	a) caddyfile=bare.Caddyfile mode=proxy ;;
	b) caddyfile=sync.Caddyfile mode=sync ;;
	c) caddyfile=async.Caddyfile mode=async ;;
	p) caddyfile=async-postgres.Caddyfile mode=async ;;
	t) caddyfile=sync-traced.Caddyfile mode=sync ;;
	u) caddyfile=async-traced.Caddyfile mode=async ;;
	f) caddyfile=fanout.Caddyfile mode=async ;;
	o) caddyfile=ordered.Caddyfile mode=async ;;
	m) caddyfile=async.Caddyfile mode=async ;;
	esac
	if [ "$scenario" = p ] && [ "$PG_OK" != 1 ]; then
		return 0
	fi
	N=$((N + 1))
	local label="$scenario-$((size / 1024))k-c$conc$LABEL_EXTRA-r$run"
	local dir="$WORK/m$N"
	export BENCH_PG_SCHEMA="webhook_bench_m$N"
	curl -fsS -X POST "http://$BACKEND_ADDR/reset" >/dev/null
	start_caddy "$caddyfile" "$dir" || { log "measurement $label: caddy did not start"; rm -rf "$dir"; return 0; }
	local args=(-url "http://127.0.0.1:$PORT/hooks/usaepay" -mode "$mode" -c "$conc" -size "$size"
		-d "$DURATION" -warmup "$WARMUP" -scenario "$scenario" -run "$run" -label "$label"
		-pids "caddy=$CADDY_PID,backend=$BACKEND_PID" -json "$OUT/$label.json" "${EXTRA_ARGS[@]}")
	if [ ${#EXTRA_ARGS[@]} = 0 ] && [ "$mode" = async ] && [ "$scenario" != m ]; then
		args+=(-drain-url "http://$BACKEND_ADDR/count" -drain-timeout "${DRAIN_TIMEOUT}s")
	fi
	# Two deliveries per event: the drain waits for both.
	[ "$scenario" = f ] && args+=(-deliveries 2)
	# 1,000 lanes: the events spread over 1,000 transactions.
	[ "$scenario" = o ] && args+=(-keys 1000)
	if [ "$scenario" != a ]; then
		# The group-commit batch size goes into the report and the summary.
		args+=(-metrics-url "http://127.0.0.1:$ADMIN/metrics")
	fi
	local prof=""
	if [ "$PROFILE" = 1 ]; then
		# Profile the middle of the measured period.
		local secs=$((DUR_S > 4 ? DUR_S - 2 : DUR_S))
		# A goroutine dump halfway through shows where requests wait
		# (off-CPU time, such as group-commit syncs), which the CPU
		# profile does not.
		(sleep "$((WARM_S + 1))" && curl -fsS -m $((secs + 30)) -o "$OUT/$label.cpu.pprof" \
			"http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=$secs") &
		prof=$!
		(sleep "$((WARM_S + DUR_S / 2))" && curl -fsS -m 30 -o "$OUT/$label.goroutines.txt" \
			"http://127.0.0.1:$ADMIN/debug/pprof/goroutine?debug=1") &
		prof="$prof $!"
		# The heap four fifths of the way through: what holds the memory
		# of a long load (the --memory run).
		(sleep "$((WARM_S + DUR_S * 4 / 5))" && curl -fsS -m 30 -o "$OUT/$label.heap.pprof" \
			"http://127.0.0.1:$ADMIN/debug/pprof/heap") &
		prof="$prof $!"
		if [ "${BENCH_TRACE:-0}" = 1 ]; then
			# An execution trace of 2 s after the warm-up (runtime/trace),
			# for the time a request spends off the CPU: go tool trace
			# -pprof=sync|syscall|net|sched.
			(sleep "$((WARM_S + 1))" && curl -fsS -m 30 -o "$OUT/$label.trace" \
				"http://127.0.0.1:$ADMIN/debug/pprof/trace?seconds=2") &
			prof="$prof $!"
		fi
	fi
	log "measure $label"
	local rc=0
	timeout $((WARM_S + DUR_S + DRAIN_TIMEOUT + 60)) "$BIN/loadgen" "${args[@]}" 2>&1 | tee -a "$OUT/run.log" >&2 || rc=$?
	local p
	for p in $prof; do
		wait "$p" || log "profile of $label failed"
	done
	stop_caddy
	if [ "$scenario" = p ]; then
		echo "$label store: $(psql "$BENCH_PG_DSN" -qAtc "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '$BENCH_PG_SCHEMA'")" >>"$OUT/run.log"
		psql "$BENCH_PG_DSN" -qc "DROP SCHEMA IF EXISTS $BENCH_PG_SCHEMA CASCADE" >/dev/null 2>&1 || log "dropping $BENCH_PG_SCHEMA failed"
	fi
	if [ "$scenario" = t ] || [ "$scenario" = u ]; then
		echo "$label trace exports: $(curl -fsS "http://$BACKEND_ADDR/traces")" >>"$OUT/run.log"
	fi
	if [ "$scenario" != a ] && [ "$scenario" != p ] && [ -d "$dir/store" ]; then
		echo "$label store: $(du -sh "$dir/store" | cut -f1)" >>"$OUT/run.log"
	fi
	# Caddy's log shows why a measurement failed (delivery errors, say).
	cp "$dir/caddy.log" "$OUT/$label.caddy.log" 2>/dev/null || true
	rm -rf "$dir"
	[ "$rc" = 0 ] || log "measurement $label failed (exit $rc)"
}

# --- open loop ---------------------------------------------------------------
# --open: per size, the proxy's closed-loop capacity (a32), then each of
# OPEN_ONLY at a fixed rate of OPEN_SHARES of it (the loadgen's -rate:
# latency from each request's scheduled time, at most OPEN_INFLIGHT in
# flight), then the concurrency-1 scenarios (OPEN_LONE) for the added CPU
# per event. The summary compares each with (a) at the same rate.
#
# --memory: the gateway in async mode whose upstream refuses connections
# (a port nobody listens on), fed MEMORY_RATE events/s for MEMORY_DURATION:
# every event stays pending, retried, so the backlog grows to rate ×
# duration while Caddy's RSS is sampled (no GOMEMLIMIT is set).

# capacity_of prints the req/s of a measurement's JSON report.
capacity_of() {
	sed -n 's/^  "rps": \([0-9.]*\),$/\1/p' "$1" | head -1
}

open_loop_run() {
	local run size share rate cap item i n
	local -a open lone
	IFS=, read -r -a open <<<"$OPEN_ONLY"
	IFS=, read -r -a lone <<<"$OPEN_LONE"
	if [ "$OPEN_MODE" = memory ]; then
		UPSTREAM_PORT=$(free_port)
		log "memory: upstream port $UPSTREAM_PORT refuses, $MEMORY_RATE events/s for $MEMORY_DURATION"
		local saved=$DURATION saved_s=$DUR_S
		DURATION=$MEMORY_DURATION DUR_S=$(seconds "$MEMORY_DURATION")
		for ((run = 1; run <= RUNS; run++)); do
			for size in $SIZES; do
				EXTRA_ARGS=(-rate "$MEMORY_RATE") LABEL_EXTRA="-o$MEMORY_RATE"
				measure m "$OPEN_INFLIGHT" "$size" "$run"
			done
		done
		DURATION=$saved DUR_S=$saved_s EXTRA_ARGS=() LABEL_EXTRA="" UPSTREAM_PORT=""
		return 0
	fi
	for ((run = 1; run <= RUNS; run++)); do
		for size in $SIZES; do
			EXTRA_ARGS=() LABEL_EXTRA=""
			measure a 32 "$size" "$run"
			cap=$(capacity_of "$OUT/a-$((size / 1024))k-c32-r$run.json")
			[ -n "$cap" ] || { log "no capacity measured at $size bytes: open loop skipped"; continue; }
			for share in $OPEN_SHARES; do
				rate=$(awk -v c="$cap" -v s="$share" 'BEGIN { printf "%d", c * s }')
				log "open loop at $rate/s ($share of $cap req/s)"
				n=${#open[@]}
				for ((i = 0; i < n; i++)); do
					item=${open[$(((i + run - 1) % n))]}
					EXTRA_ARGS=(-rate "$rate" -share "$share") LABEL_EXTRA="-o$rate"
					measure "$item" "$OPEN_INFLIGHT" "$size" "$run"
				done
			done
			EXTRA_ARGS=() LABEL_EXTRA=""
			for item in "${lone[@]}"; do
				measure "${item:0:1}" "${item:1}" "$size" "$run"
			done
		done
	done
}

# --- the run ---------------------------------------------------------------
IFS=, read -r -a PLAN <<<"$ONLY"
START=$(date +%s)
[ -z "$OPEN_MODE" ] || { open_loop_run; RUNS=0; }
for ((run = 1; run <= RUNS; run++)); do
	for size in $SIZES; do
		# Rotate the order by run, so no scenario always runs first or
		# right after another's cleanup.
		n=${#PLAN[@]}
		for ((i = 0; i < n; i++)); do
			item=${PLAN[$(((i + run - 1) % n))]}
			measure "${item:0:1}" "${item:1}" "$size" "$run"
		done
	done
done
log "done in $(($(date +%s) - START)) s; loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

"$BIN/loadgen" -summarize "$OUT" -json "$OUT/summary.json" | tee "$OUT/summary.md"
echo "results in $OUT" >&2
