#!/bin/bash
# Two builds of confab on one SQLite store, alternated (old then new, twice unless ROUNDS says),
# on the full dataset (`confab-bench dataset`, `confab import --tenant bench`):
#  - the hot reads alone, 64 connections: the HTTP floor, the 1,024 most common words searched
#    in turn, get conversation and the 50-message page over 1,000 conversations, `ka` again and
#    again;
#  - get conversation on 62 connections beside 2 connections searching `ka` filtered to an agent
#    that does not exist (a walk of every match of the word on SQLite), or LONG's path.
# Usage: [LONG=/v1/search?q=ka&role=tool] long-reads-ab.sh OLD_BIN NEW_BIN DATABASE_URL KEY [ROUNDS]
# (docs/performance.md, twenty-eighth session; on PostgreSQL, where an agent is found first,
# the forty-ninth session's LONG was `q=ka&role=tool`)
set -u
OLD_BIN=$1 NEW_BIN=$2 DB=$3 KEY=$4 ROUNDS=${5:-2}
LOAD=$(dirname "$0")/../../target/release/confab-bench
ADDR=127.0.0.1:8094
W=$(mktemp -d)
load() { "$LOAD" load --addr $ADDR --key "$KEY" "$@" 2>&1 | tail -1; }
start() {
  "$1" --database "$DB" serve --addr $ADDR > "$W/serve.log" 2>&1 &
  SP=$!
  for _ in $(seq 1 60); do curl -sf "http://$ADDR/healthz" > /dev/null && return; sleep 0.5; done
}
# The conversations and the words, read once through the old build.
start "$OLD_BIN"
python3 - "$ADDR" "$KEY" "$W" <<'PY'
import collections, json, re, sys, urllib.request
addr, key, w = sys.argv[1:]
def get(path):
    r = urllib.request.Request(f"http://{addr}{path}", headers={"Authorization": f"Bearer {key}"})
    return json.load(urllib.request.urlopen(r))
ids, cur = [], None
while len(ids) < 1000:
    d = get("/v1/conversations?limit=100" + (f"&cursor={cur}" if cur else ""))
    ids += [c["id"] for c in d["data"]]
    cur = d.get("next_cursor")
    if not cur:
        break
words = collections.Counter()
for i in ids[:300]:
    for m in get(f"/v1/conversations/{i}/messages?limit=100")["data"]:
        words.update(set(re.findall(r"\w+", m["content"].lower())))
open(f"{w}/gets", "w").write("".join(f"--path\n/v1/conversations/{i}\n" for i in ids))
open(f"{w}/pages", "w").write("".join(f"--path\n/v1/conversations/{i}/messages?limit=50\n" for i in ids))
open(f"{w}/words", "w").write("".join(f"--path\n/v1/search?q={x}\n" for x, _ in words.most_common(1024)))
PY
kill $SP; wait $SP 2>/dev/null
mapfile -t GETS < "$W/gets"; mapfile -t PAGES < "$W/pages"; mapfile -t WORDS < "$W/words"
LONG=${LONG:-/v1/search?q=ka&agent_id=no-such-agent}
run() {
  local name=$1
  start "$2"
  load "${WORDS[@]}" --seconds 3 > /dev/null
  echo "$name floor  $(load --path /healthz --seconds 4)"
  echo "$name words  $(load "${WORDS[@]}" --seconds 8)"
  echo "$name get    $(load "${GETS[@]}" --seconds 5)"
  echo "$name page   $(load "${PAGES[@]}" --seconds 5)"
  echo "$name ka     $(load --path /v1/search?q=ka --seconds 5)"
  echo "$name gets alone  $(load "${GETS[@]}" --concurrency 62 --seconds 6)"
  load --path "$LONG" --concurrency 2 --seconds 8 > "$W/long" &
  local lp=$!
  sleep 1
  echo "$name gets beside $(load "${GETS[@]}" --concurrency 62 --seconds 6)"
  wait $lp
  echo "$name long searches $(cat "$W/long")"
  echo "$name $(curl -s "http://$ADDR/metrics" | grep '^confab_store_reads_handed_over_total' || echo 'no reads handed over')"
  kill $SP; wait $SP 2>/dev/null
}
for r in $(seq 1 "$ROUNDS"); do
  run "old r$r" "$OLD_BIN"
  run "new r$r" "$NEW_BIN"
done
rm -rf "$W"
