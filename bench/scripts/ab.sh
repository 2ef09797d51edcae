#!/bin/bash
# One run of an A/B comparison of two builds of `confab` on one store (docs/performance.md,
# "Running it"): starts BINDIR/confab serve on DBURL, measures the HTTP floor (3 s), warms the
# route (2 s), then drives it for SECS at 64 connections with the requests in ARGFILE (written
# by load_args.py) and prints one line: the floor, idle and final RSS, the server's and
# PostgreSQL's CPU ticks over the measured run, and the load's own summary. ab_table.py turns
# those lines into CPU a request. Alternate the builds (A B B A A B) and compare medians.
#
#   bench/scripts/ab.sh BINDIR DBURL KEYFILE ARGFILE SECS LABEL
#
# KEYFILE is the JSON `confab keys create --tenant bench` printed. LOADER (default: the
# release confab-bench of this checkout) drives the load: keep it the same for both builds.
set -euo pipefail
BIN=$1 DB=$2 ARGS=$4 SECS=$5 LABEL=$6
KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$3")
LOADER=${LOADER:-$(dirname "$0")/../../target/release/confab-bench}
ADDR=${ADDR:-127.0.0.1:8088}
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
pgcpu() {
    local t=0 v
    for p in $(pgrep -x postgres || true); do
        v=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo $t
}
"$BIN/confab" --database "$DB" serve --addr "$ADDR" 2> "${TMPDIR:-/tmp}/ab-server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://$ADDR/healthz" > /dev/null && break; sleep 0.1; done
sleep 1
IDLE=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")
FLOOR=$("$LOADER" load --addr "$ADDR" --key "$KEY" --path /healthz --seconds 3 2>&1 \
    | grep -o '[0-9]* req/s' | head -1)
mapfile -d "" A < "$ARGS"
"$LOADER" load --addr "$ADDR" --key "$KEY" --seconds 2 "${A[@]}" > /dev/null 2>&1
c0=$(cpu $PID); p0=$(pgcpu)
OUT=$("$LOADER" load --addr "$ADDR" --key "$KEY" --seconds "$SECS" --pid $PID "${A[@]}" 2>&1)
c1=$(cpu $PID); p1=$(pgcpu)
RSS=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")
echo "$LABEL floor=[$FLOOR] idle_kb=$IDLE after_kb=$RSS srv_ticks=$((c1 - c0)) pg_ticks=$((p1 - p0)) :: $(echo "$OUT" | tr '\n' ' ')"
