#!/bin/bash
# PostgreSQL's cold searches as the newest segment's unbuilt head grows (docs/performance.md,
# fiftieth session). One server on DBURL (the benchmark's dataset imported, postings built):
# waits until the builder has built every segment up to the newest rowid, measures the 1,024
# words of ARGDIR/cold.nul for SECS at 64 connections, then appends messages (ARGDIR/app.nul,
# 8 connections) in steps and measures again after each, printing the rows the head holds
# (rowids above the newest segment's `upto`) beside each line. It measures the code before
# the fifty-first session, whose builder left a head under 4,096 rows (and under half the rows
# built) alone; since then the newest segment is extended at the next pause, so the head is
# gone before it is measured (the printed head shows it): measure that code beside appends
# with pg-cold-trickle.sh.
#
#   bench/scripts/pg-cold-head.sh BINDIR DBURL KEYFILE ARGDIR SECS [STEP...]
#
# STEPs are messages appended before each measurement after the first (default 1000 1000 2000).
set -euo pipefail
BIN=$1 DB=$2 KEYFILE=$3 ARGDIR=$4 SECS=$5
shift 5
if [ $# -eq 0 ]; then STEPS=(1000 1000 2000); else STEPS=("$@"); fi
KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$KEYFILE")
LOADER=${LOADER:-$(dirname "$0")/../../target/release/confab-bench}
ADDR=${ADDR:-127.0.0.1:8088}
PSQL=(psql "$DB" -Atc)
"$BIN/confab" --database "$DB" serve --addr "$ADDR" 2> "${TMPDIR:-/tmp}/pg-cold-head.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://$ADDR/healthz" > /dev/null && break; sleep 0.1; done
head_rows() {
    "${PSQL[@]}" "SELECT (SELECT max(rowid) FROM messages) - (SELECT upto FROM search_segments ORDER BY seg DESC LIMIT 1)"
}
for _ in $(seq 1 120); do [ "$(head_rows)" = 0 ] && break; sleep 1; done
mapfile -d "" COLD < "$ARGDIR/cold.nul"
mapfile -d "" APP < "$ARGDIR/app.nul"
measure() {
    "$LOADER" load --addr "$ADDR" --key "$KEY" --seconds 2 "${COLD[@]}" > /dev/null 2>&1
    echo "head=$(head_rows) :: $("$LOADER" load --addr "$ADDR" --key "$KEY" --seconds "$SECS" "${COLD[@]}" 2>&1 | tail -1)"
}
measure
for n in "${STEPS[@]}"; do
    "$LOADER" load --addr "$ADDR" --key "$KEY" --concurrency 8 --requests "$n" "${APP[@]}" > /dev/null 2>&1
    measure
done
