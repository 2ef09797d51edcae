#!/bin/bash
# Appends from 64 connections over 3,000 conversations with the search changes' triggers
# (migration 0005) and without, alternated, the order swapped each round, 10 s a round.
# Usage: pg-trigger-ab.sh DB_URL KEY   (a store made as pg-search-load.sh says; it re-creates
# the triggers at the end)   (docs/performance.md, twenty-sixth session)
set -u
DB=$1 KEY=$2
BIN=$(dirname "$0")/../../target/release
DBNAME=${DB##*/}
ARGS=()
for id in $(psql "$DB" -Atc "SELECT id FROM conversations ORDER BY random() LIMIT 3000"); do
  ARGS+=(--path "/v1/conversations/$id/messages")
done
ARGS+=(--body '{"messages":[{"role":"user","content":"an appended message with a few words of text"}]}')
"$BIN/confab" --database "$DB" serve --addr 127.0.0.1:8093 > /tmp/pg-trigger-ab.log 2>&1 &
SP=$!
sleep 15
drop="DROP TRIGGER IF EXISTS search_changes_insert ON messages; DROP TRIGGER IF EXISTS search_changes_update ON messages; DROP TRIGGER IF EXISTS search_changes_delete ON messages;"
on() { psql "$DB" -q -c "SET client_min_messages = warning; $drop
CREATE TRIGGER search_changes_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_inserted();
CREATE TRIGGER search_changes_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_old();
CREATE TRIGGER search_changes_update AFTER UPDATE ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_new();"; }
off() { psql "$DB" -q -c "SET client_min_messages = warning; $drop"; }
cpu() { awk '{print $14+$15}' /proc/$SP/stat; }
run() {
  $1
  local c0=$(cpu)
  local out=$("$BIN/confab-bench" load --addr 127.0.0.1:8093 --key "$KEY" "${ARGS[@]}" --concurrency 64 --seconds 10 2>&1 | tail -1)
  local c1=$(cpu)
  echo "triggers $1 | $out | confab ticks $((c1-c0))"
}
for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then run on; run off; else run off; run on; fi
done
on
kill $SP; wait $SP 2>/dev/null
