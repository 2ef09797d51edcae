#!/usr/bin/env bash
# Schema fuzzing: start the debug server on a fresh SQLite database and a free port, seed a
# conversation with messages (so dialect routes see real ids), then run schemathesis with all
# checks against /openapi.json. Exits non-zero on any schemathesis failure.
#
#   tools/schemathesis.sh [ST_BINARY] [extra st args...]
#
# Environment: CONFAB_BIN (default target/debug/confab), ST_MAX_EXAMPLES (30), ST_MAX_TIME (150),
# ST_SEED (42).
set -euo pipefail
cd "$(dirname "$0")/.."
st=${1:-st}
shift || true
bin=${CONFAB_BIN:-target/debug/confab}
work=$(mktemp -d)
db="sqlite://$work/st.db"
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

token=$("$bin" --database "$db" keys create --tenant st --scopes read,write,admin | python3 -c "import json,sys; print(json.load(sys.stdin)[\"token\"])")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$bin" --database "$db" serve --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# Seed, through the native API: one conversation with messages for one agent whose id is a UUID
# (Sensay's replicaUUID, Convai's charID and Converra's promptId are all the agent id), and one
# webhook endpoint. schemathesis.toml reads the ids from the environment.
seed=$(python3 tools/schemathesis_seed.py "$base" "$token")
echo "seeded: $seed"
# shellcheck disable=SC2046
export $seed

status=0
"$st" --config-file schemathesis.toml run "$base/openapi.json" --checks all \
  --exclude-checks ensure_resource_availability \
  -n "${ST_MAX_EXAMPLES:-30}" --max-time "${ST_MAX_TIME:-150}" --seed "${ST_SEED:-42}" \
  --request-timeout 10 --no-color \
  -H "Authorization: Bearer $token" -H "CONVAI-API-KEY: $token" -H "X-ORGANIZATION-SECRET: $token" \
  "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed ($status); server log tail:" >&2
  tail -n 50 "$work/server.log" >&2
fi
exit "$status"
