#!/bin/bash
# Two builds of `confab` measured at once (docs/performance.md, "Running it"): both serve the
# same store at the same time, each driven by half the connections (32) with the requests in
# ARGFILE for SECS, after a 2 s warm-up; prints each build's rate and B's over A's. On this
# shared machine the speed moves by a third within minutes, so builds run one after the other
# (ab.sh) differ by more than most changes do; side by side, both meet the same minutes, and the
# ratio moves by about 2 % between runs of one build against itself. Swap A and B between runs.
#
#   bench/scripts/side_by_side.sh BINDIR_A BINDIR_B DBURL KEYFILE ARGFILE SECS
#
# KEYFILE is the JSON `confab keys create --tenant bench` printed; LOADER as in ab.sh.
set -euo pipefail
A=$1 B=$2 DB=$3 ARGS=$5 SECS=$6
KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$4")
LOADER=${LOADER:-$(dirname "$0")/../../target/release/confab-bench}
OUT=$(mktemp -d)
"$A/confab" --database "$DB" serve --addr 127.0.0.1:8091 2> "$OUT/a.log" &
PA=$!
"$B/confab" --database "$DB" serve --addr 127.0.0.1:8092 2> "$OUT/b.log" &
PB=$!
trap 'kill $PA $PB 2>/dev/null || true; rm -rf "$OUT"' EXIT
for port in 8091 8092; do
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
done
mapfile -d "" R < "$ARGS"
load() { "$LOADER" load --addr "127.0.0.1:$1" --key "$KEY" --concurrency 32 --seconds "$2" "${R[@]}"; }
load 8091 2 > /dev/null 2>&1 & W=$!
load 8092 2 > /dev/null 2>&1
wait $W
load 8091 "$SECS" > "$OUT/a.out" 2>&1 & W=$!
load 8092 "$SECS" > "$OUT/b.out" 2>&1
wait $W
ra=$(grep -o '[0-9]* req/s' "$OUT/a.out" | tail -1 | cut -d' ' -f1)
rb=$(grep -o '[0-9]* req/s' "$OUT/b.out" | tail -1 | cut -d' ' -f1)
echo "A=$A $ra/s B=$B $rb/s B/A=$(python3 -c "print(round($rb / $ra, 3))")"
