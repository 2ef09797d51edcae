#!/bin/bash
# PostgreSQL's cold searches beside a steady trickle of appends (docs/performance.md,
# fifty-first session): the 1,024 words of ARGDIR/cold.nul at 64 connections for SECS while
# ARGDIR/app.nul's appends come at RATE a second, for each RATE given, one server on DBURL
# (the benchmark's dataset imported, postings built), started afresh for each RATE. Waits
# until the builder has built every segment up to the newest rowid, starts the appends, lets
# them run 5 s, then measures; prints beside each line the rows the head held (rowids above
# the newest segment's `upto`), sampled every half second while measured: median and most.
# A RATE of 0 measures without appends.
#
#   bench/scripts/pg-cold-trickle.sh BINDIR DBURL KEYFILE ARGDIR SECS RATE...
set -euo pipefail
BIN=$1 DB=$2 KEYFILE=$3 ARGDIR=$4 SECS=$5
shift 5
KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$KEYFILE")
LOADER=${LOADER:-$(dirname "$0")/../../target/release/confab-bench}
ADDR=${ADDR:-127.0.0.1:8088}
PSQL=(psql "$DB" -Atc)
head_rows() {
    "${PSQL[@]}" "SELECT (SELECT max(rowid) FROM messages) - (SELECT upto FROM search_segments WHERE built ORDER BY seg DESC LIMIT 1)"
}
mapfile -d "" COLD < "$ARGDIR/cold.nul"
mapfile -d "" APP < "$ARGDIR/app.nul"
for rate in "$@"; do
    "$BIN/confab" --database "$DB" serve --addr "$ADDR" 2> "${TMPDIR:-/tmp}/pg-cold-trickle.log" &
    PID=$!
    trap 'kill $PID 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do curl -sf "http://$ADDR/healthz" > /dev/null && break; sleep 0.1; done
    for _ in $(seq 1 120); do [ "$(head_rows)" = 0 ] && break; sleep 1; done
    if [ "$rate" = 0 ]; then
        echo "none" > /tmp/pg-cold-trickle.app
        sleep 1 &
    else
        "$LOADER" load --addr "$ADDR" --key "$KEY" --concurrency 4 --rate "$rate" \
            --requests $((rate * (SECS + 9))) --seconds $((SECS + 9)) "${APP[@]}" \
            > /tmp/pg-cold-trickle.app 2>&1 &
    fi
    APPS=$!
    sleep 5
    "$LOADER" load --addr "$ADDR" --key "$KEY" --seconds 2 "${COLD[@]}" > /dev/null 2>&1
    (for _ in $(seq 1 $((SECS * 2))); do head_rows; sleep 0.5; done) > /tmp/pg-cold-trickle.heads &
    SAMPLER=$!
    line=$("$LOADER" load --addr "$ADDR" --key "$KEY" --seconds "$SECS" "${COLD[@]}" 2>&1 | tail -1)
    wait $SAMPLER
    heads=$(sort -n /tmp/pg-cold-trickle.heads | awk '{a[NR]=$1} END {print "head median", a[int((NR+1)/2)], "most", a[NR]}')
    wait $APPS
    echo "rate=$rate :: $heads :: $line :: appends $(tail -1 /tmp/pg-cold-trickle.app | cut -d, -f1-3)"
    kill $PID; wait $PID 2>/dev/null || true
done
