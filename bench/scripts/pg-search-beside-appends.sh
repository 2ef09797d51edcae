#!/bin/bash
# Searches of one word (48 connections) beside appends (16 connections, over 3,000
# conversations, text holding the word), with the search changes' triggers (windows kept) and
# without (nothing kept: the code before), a server started afresh for each, order swapped the
# second round. Usage: pg-search-beside-appends.sh DB_URL KEY [WORD]   (a store made as
# pg-search-load.sh says; the triggers are re-created at the end)
# (docs/performance.md, twenty-sixth session)
set -u
DB=$1 KEY=$2 WORD=${3:-ka}
BIN=$(dirname "$0")/../../target/release
ARGS=()
for id in $(psql "$DB" -Atc "SELECT id FROM conversations ORDER BY random() LIMIT 3000"); do
  ARGS+=(--path "/v1/conversations/$id/messages")
done
ARGS+=(--body "{\"messages\":[{\"role\":\"user\",\"content\":\"$WORD an appended message with a few words of text\"}]}")
drop="SET client_min_messages = warning; DROP TRIGGER IF EXISTS search_changes_insert ON messages; DROP TRIGGER IF EXISTS search_changes_update ON messages; DROP TRIGGER IF EXISTS search_changes_delete ON messages;"
on() { psql "$DB" -q -c "$drop
CREATE TRIGGER search_changes_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_inserted();
CREATE TRIGGER search_changes_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_old();
CREATE TRIGGER search_changes_update AFTER UPDATE ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION search_changes_new();"; }
off() { psql "$DB" -q -c "$drop"; }
run() {
  $1
  "$BIN/confab" --database "$DB" serve --addr 127.0.0.1:8093 > /tmp/pg-search-beside-appends.log 2>&1 &
  local sp=$!
  sleep 6
  "$BIN/confab-bench" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$WORD" --concurrency 8 --seconds 3 > /dev/null 2>&1
  "$BIN/confab-bench" load --addr 127.0.0.1:8093 --key "$KEY" "${ARGS[@]}" --concurrency 16 --seconds 10 > /tmp/pg-appends.out 2>&1 &
  local ap=$!
  local s=$("$BIN/confab-bench" load --addr 127.0.0.1:8093 --key "$KEY" --path "/v1/search?q=$WORD" --concurrency 48 --seconds 9 2>&1 | tail -1)
  wait $ap
  echo "triggers $1 | search: $s | appends: $(tail -1 /tmp/pg-appends.out)"
  kill $sp; wait $sp 2>/dev/null
}
for r in 1 2; do
  if [ $r = 1 ]; then run on; run off; else run off; run on; fi
done
on
