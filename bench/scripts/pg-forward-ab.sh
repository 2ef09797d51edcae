#!/bin/bash
# Searches of one word (48 connections) beside appends (16 connections over 3,000
# conversations, text holding the word unless NOWORD=1), two builds alternated with the order
# swapped every round, each on its own copy of the store (an older build cannot open a database
# a newer one has migrated). Usage:
#   pg-forward-ab.sh OLD_BIN OLD_DB NEW_BIN NEW_DB KEY [WORD] [ROUNDS]
# where the databases are copies of one store made as pg-search-load.sh says (CREATE DATABASE
# … TEMPLATE …) and KEY is a key of it. Server CPU per request from /proc/PID/stat.
# (docs/performance.md, twenty-seventh session)
set -u
OLD_BIN=$1 OLD_DB=$2 NEW_BIN=$3 NEW_DB=$4 KEY=$5 WORD=${6:-ka} ROUNDS=${7:-2}
LOAD=$(dirname "$0")/../../target/release/confab-bench
TEXT="an appended message with a few words of text"
[ "${NOWORD:-0}" = 1 ] || TEXT="$WORD $TEXT"
body="{\"messages\":[{\"role\":\"user\",\"content\":\"$TEXT\"}]}"
paths() {
  for id in $(psql "$1" -Atc "SELECT id FROM conversations ORDER BY random() LIMIT 3000"); do
    printf -- '--path\n/v1/conversations/%s/messages\n' "$id"
  done
}
run() {
  local name=$1 bin=$2 db=$3
  mapfile -t args < <(paths "$db")
  "$bin" --database "$db" serve --addr 127.0.0.1:8093 > "/tmp/pg-forward-ab-$name.log" 2>&1 &
  local sp=$!
  sleep 6
  "$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$WORD" --concurrency 8 --seconds 3 > /dev/null 2>&1
  local t0=$(awk '{print $14+$15}' /proc/$sp/stat)
  "$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" "${args[@]}" --body "$body" --concurrency 16 --seconds 10 > /tmp/pg-forward-ab-appends.out 2>&1 &
  local ap=$!
  local s=$("$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$WORD" --concurrency 48 --seconds 9 2>&1 | tail -1)
  wait $ap
  local t1=$(awk '{print $14+$15}' /proc/$sp/stat)
  local kept=$(curl -s 127.0.0.1:8093/metrics | grep '^confab_store_search_windows_total' | tr '\n' ' ')
  echo "$name | search: $s | appends: $(tail -1 /tmp/pg-forward-ab-appends.out) | confab cpu $((t1 - t0)) ticks | $kept"
  kill $sp; wait $sp 2>/dev/null
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run old "$OLD_BIN" "$OLD_DB"; run new "$NEW_BIN" "$NEW_DB"
  else run new "$NEW_BIN" "$NEW_DB"; run old "$OLD_BIN" "$OLD_DB"; fi
done
