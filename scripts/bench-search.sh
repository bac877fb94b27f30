#!/usr/bin/env bash
# Search end to end through the gateway at N indexed traces (default 100 000): `tracegate serve`
# with `[state]` on a database of its own, the index filled straight into `trace_index` (search
# reads only the index), then wrk on `GET /v1/traces?tenant=…&limit=50` as one engineer: SQL, the
# core's re-check and masking of the results, the shared rate-limit check and the audit append.
# Prints one Markdown row (traces, requests, req/s, p50, p99).
#   TRACES=100000 DURATION=10s CONNECTIONS=4 bash scripts/bench-search.sh
#   BIN=target/debug/tracegate bash scripts/bench-search.sh     # skip the release build
#   GROUP=eng bash scripts/bench-search.sh   # as the example policy's engineer, whose role masks:
#                                            # its filters cannot go into SQL (the whole scope is read)
# By default the caller is in `analyst`, a role added for the run: search, every field, no masking,
# so the tenant filter and the limit go into the SQL query.
# Needs wrk (Debian package wrk; installed if missing) and PostgreSQL at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
TRACES=${TRACES:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-4}
GROUP=${GROUP:-analyst}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
export PGHOST=${PGHOST:-127.0.0.1}
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -z "${BIN:-}" ]; then . scripts/install-build-deps.sh; cargo build --release -p tracegate -q; BIN=target/release/tracegate; fi
WORK=$(mktemp -d)
DB=tg_bench_search_$$
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; dropdb --if-exists "$DB" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
createdb "$DB"
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

$BIN quickstart --listen 127.0.0.1:$PORT --data "$WORK/data" >/dev/null 2>&1 & pid=$!
wait_http http://127.0.0.1:$PORT/healthz
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
cat >> "$WORK/data/policy.toml" <<'TOML'

[roles.analyst]
groups = ["analyst"]
actions = ["search"]
[roles.analyst.fields]
allow = ["$"]
[roles.analyst.rows]
max_count = 100
[roles.analyst.masking]
secrets = "off"
pii = "off"
keys = "off"
TOML
# One principal sends every request: lift its per-principal limits for the run.
printf '\n[state]\nurl = "postgres://%s@%s:5432/%s"\n\n[limits]\nrequests_per_minute = 100000000\nrequest_burst = 1000000\n' \
  "$(whoami)" "$PGHOST" "$DB" >> "$WORK/data/tracegate.toml"
RUST_LOG=warn $BIN serve --config "$WORK/data/tracegate.toml" --listen 127.0.0.1:$PORT 2>"$WORK/gw.log" & pid=$!
wait_http http://127.0.0.1:$PORT/healthz
# The same rows as the SQL-only figure in docs/benchmarks.md: 50 tenants, 60 days of start times.
psql -q -d "$DB" -c "INSERT INTO trace_index (trace_id, tenant, project, agent, \"user\", started_ns)
  SELECT 'trace-'||lpad(i::text,7,'0'), 'tenant-'||(i%50), 'p'||(i%7), 'agent-'||(i%5), 'u'||(i%1000),
         (1795000000::bigint - (i*37 % (60*86400)))*1000000000 FROM generate_series(1,$TRACES) i; ANALYZE trace_index;"
TOKEN=$($BIN token --sub bench-engineer --groups "$GROUP" --config "$WORK/data/tracegate.toml")
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/traces?tenant=tenant-7&limit=50" | python3 -c \
  'import json,sys; d=json.load(sys.stdin); assert len(d["traces"]) == 50, d; print("one search:", len(d["traces"]), "traces")' >&2
cat > "$WORK/search.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/traces?tenant=tenant-" .. (n % 50) .. "&limit=50")
end
LUA
out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --timeout 30s --latency -s "$WORK/search.lua" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT")
echo "$out" >&2
if echo "$out" | grep -q "Non-2xx"; then echo "some searches failed" >&2; exit 1; fi
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$out" | awk '$1=="50%" {print $2}')
p99=$(echo "$out" | awk '$1=="99%" {print $2}')
echo "| $TRACES | $GROUP | $reqs | $rps | $p50 | $p99 |"
