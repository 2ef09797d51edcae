#!/bin/bash
# usage: filtered_latency.sh BIN DBURL TOKENFILE LABEL [CONVERSATION_ID]
# Serves DBURL (a store holding the benchmark dataset under its tenant, `confab-bench dataset`
# imported) with BIN on 127.0.0.1:8113 and prints, per filtered search, LABEL, the median of
# 9 sequential requests in ms (after 2 to warm) and the query: docs/search.md, "Filtered
# searches". TOKENFILE holds the API token alone. The default conversation is the dataset's
# first (55 messages).
BIN=$1; DB=$2; T=$(cat $3); L=$4; PORT=8113
pkill -f "serve --addr 127.0.0.1:$PORT"; sleep 0.5
(setsid $BIN --database $DB serve --addr 127.0.0.1:$PORT > /dev/null 2>&1 &); sleep 4
C=${5:-01a179c3-0778-73f1-a6b2-33e3ef28529f}
for q in "q=ka&conversation_id=$C" "q=ka&conversation_id=$C&sort=recent" "q=lopo&conversation_id=$C" "q=ka&user_id=user-220" "q=ka&user_id=user-220&role=assistant" "q=lopo&user_id=user-220" "q=lopo&user_id=user-220&sort=recent" "q=mipo&user_id=user-220" "q=ka&agent_id=nobody" "q=lopo&agent_id=agent-0" "q=ka&agent_id=agent-0" "q=sinika&user_id=user-220"; do
  for i in 1 2; do curl -s -o /dev/null -H "Authorization: Bearer $T" "http://127.0.0.1:$PORT/v1/search?$q"; done
  for i in $(seq 9); do curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $T" "http://127.0.0.1:$PORT/v1/search?$q"; done | sort -n | sed -n 5p | awk -v q="$q" -v l="$L" '{printf "%s\t%.2f\t%s\n", l, $1*1000, q}'
done
pkill -f "serve --addr 127.0.0.1:$PORT"
