#!/bin/bash
# Repeated ranked searches on a PostgreSQL store, and where the CPU goes: confab's and the
# PostgreSQL backends' (from /proc/PID/stat), 64 connections, 8 s per word.
# Usage: pg-search-load.sh DB_URL KEY [WORD...]   (docs/performance.md, twenty-sixth session)
# The store: `confab-bench dataset > ds.ndjson; confab --database DB_URL import --tenant bench
# ds.ndjson; confab --database DB_URL keys create --tenant bench` (its "token" is KEY).
set -u
DB=$1 KEY=$2; shift 2
WORDS=${*:-ka sinika ka}
BIN=$(dirname "$0")/../../target/release
DBNAME=${DB##*/}
"$BIN/confab" --database "$DB" serve --addr 127.0.0.1:8093 > /tmp/pg-search-load.log 2>&1 &
SP=$!
sleep 8
cpu() { awk '{print $14+$15}' /proc/$SP/stat; }
pgcpu() { for p in $(pgrep -f "postgres: .*$DBNAME"); do awk '{print $14+$15}' /proc/$p/stat; done | awk '{s+=$1} END {print s+0}'; }
for q in $WORDS; do
  c0=$(cpu); p0=$(pgcpu)
  out=$("$BIN/confab-bench" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$q" --concurrency 64 --seconds 8 2>&1 | tail -1)
  c1=$(cpu); p1=$(pgcpu)
  echo "$q | $out | confab ticks $((c1-c0)) postgres ticks $((p1-p0))"
done
curl -s -H "Authorization: Bearer $KEY" 127.0.0.1:8093/metrics | grep search_windows_total
kill $SP; wait $SP 2>/dev/null
