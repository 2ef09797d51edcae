#!/bin/bash
# 64 clients search a word no window is kept for, all at once, one request each (a team
# opening one dashboard): the time until the last answer. Two builds alternated, each taking a
# word of its own each round (the 101st, 102nd, … most common words, each in about 3 % of
# messages, so each a first read), on one store. Then 2 s of 64 connections on that word, to
# see the burst's cost in the throughput that follows.
# Usage: pg-cold-burst.sh OLD_BIN NEW_BIN DB_URL KEY [ROUNDS]
# (a store made as pg-search-load.sh says). (docs/performance.md, twenty-seventh session)
set -u
OLD_BIN=$1 NEW_BIN=$2 DB=$3 KEY=$4 ROUNDS=${5:-3}
LOAD=$(dirname "$0")/../../target/release/confab-bench
S=(ka lo mi nu pa ro si tu va zo bi du fa go hi ju ko la mo ni po ra so ti vu za bo da fi gu ha jo ku li ma no pi ru sa to)
word() { local r=$(($1 - 40)); echo "${S[$((r / 40))]}${S[$((r % 40))]}"; }
run() {
  local name=$1 bin=$2 w=$3
  "$bin" --database "$DB" serve --addr 127.0.0.1:8093 > "/tmp/pg-cold-burst-$name.log" 2>&1 &
  local sp=$!
  sleep 6
  "$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=sinika" --concurrency 1 --seconds 1 --requests 1 > /dev/null
  local burst=$("$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$w" --concurrency 64 --seconds 30 --requests 64 2>&1 | tail -1)
  local after=$("$LOAD" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$w" --concurrency 64 --seconds 2 2>&1 | tail -1)
  echo "$name, \`$w\`: 64 at once: $burst | then: $after"
  kill $sp; wait $sp 2>/dev/null
}
rank=${START_RANK:-101}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run old "$OLD_BIN" "$(word $rank)"; run new "$NEW_BIN" "$(word $((rank + 1)))"
  else run new "$NEW_BIN" "$(word $rank)"; run old "$OLD_BIN" "$(word $((rank + 1)))"; fi
  rank=$((rank + 2))
done
