#!/usr/bin/env bash
# Bounded loopback load run: tracegate beside an nginx proxy hop serving the same trace files,
# measured in the same run with wrk. Prints a Markdown table (req/s, p50, p99, p99.9, and for the
# embedded gateway its CPU per request: utime + stime from /proc/<pid>/stat over the run ÷ requests).
#   DURATION=10s CONNECTIONS=32 bash scripts/bench-http.sh
# Then the scaled-out deployment (SCALE=0 skips it): traces in an S3 bucket served by s3s-fs
# (BENCH_S3=moto for moto, which caps every row at a few hundred GETs a second here), state in a
# fresh PostgreSQL database, started by scripts/start-replicas.sh — one replica directly and
# behind nginx, two behind nginx — beside the S3 server read directly and through an nginx proxy
# hop (presigned GETs: the server checks signatures); the realistic traces too, put into the
# bucket as they are and indexed by `index rebuild`.
# What the audit flush adds: the embedded engineer rows again with the audit log on tmpfs
# (/dev/shm, where fdatasync returns at once) — a side measurement, never a deployment.
# PERF=1 adds, after each gateway row, where its CPU went (perf; see run() below).
# AB="BIN_A BIN_B" runs an alternated A/B of two builds instead (see below), on the embedded
# default or, with AB_DEPLOY=s3, on one replica of the S3 + PostgreSQL deployment.
# Needs wrk and nginx (Debian packages wrk, nginx-light); installs them if missing; the S3 rows
# also need moto_server and PostgreSQL at 127.0.0.1:5432 (see scripts/start-replicas.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
BASE_PORT=${BASE_PORT:-18080}
if [ -n "${PERF:-}" ] && ! command -v perf >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
# BIN=path runs an already built binary (say which build in the figures); default: release.
if [ -z "${BIN:-}" ]; then
  . scripts/install-build-deps.sh; cargo build --release -p tracegate -q
  BIN=target/release/tracegate
fi
WORK=$(mktemp -d)
DATA=$WORK/data
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# Lay out the quickstart directory, add the benchmark traces, then serve it.
$BIN quickstart --listen 127.0.0.1:$BASE_PORT --data "$DATA" >/dev/null 2>&1 & pids+=($!)
wait_http http://127.0.0.1:$BASE_PORT/healthz
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
python3 scripts/gen-trace.py 2048 bench-2k > "$DATA/traces/bench-2k.json"
python3 scripts/gen-trace.py 102400 bench-100k > "$DATA/traces/bench-100k.json"
# Realistic traces, all different (the labeled corpus's generator: OTLP GenAI spans and agent
# step logs dense with secrets, PII and names, JSON in strings, Go-HTML escapes): wrk reads them
# in random order, so the masking engine keeps meeting text it has not seen, as in front of a
# real store. REAL_COUNT of each size.
REAL_COUNT=${REAL_COUNT:-256}
cargo build --release -q -p tracegate-core --example gen_corpus
target/release/examples/gen_corpus 2048 "$REAL_COUNT" real-2k "$DATA/traces"
target/release/examples/gen_corpus 102400 "$REAL_COUNT" real-100k "$DATA/traces"
# One principal sends every request: lift its per-principal limits for the run.
printf '\n[limits]\nrequests_per_minute = 100000000\nrequest_burst = 1000000\n' >> "$DATA/tracegate.toml"
RUST_LOG=warn $BIN serve --config "$DATA/tracegate.toml" --listen 127.0.0.1:$BASE_PORT 2>"$WORK/gw.log" & pids+=($!)
wait_http http://127.0.0.1:$BASE_PORT/healthz

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  upstream origin { server 127.0.0.1:$((BASE_PORT + 1)); keepalive 64; }
  server { listen 127.0.0.1:$((BASE_PORT + 1)); root $DATA/traces; location /v1/traces/ { alias $DATA/traces/; try_files \$uri.json =404; } }
  server { listen 127.0.0.1:$((BASE_PORT + 2)); location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
nginx -c "$WORK/nginx.conf"
wait_http http://127.0.0.1:$((BASE_PORT + 2))/v1/traces/bench-2k

ENG=$($BIN token --config "$DATA/tracegate.toml" --sub bench --groups eng --ttl 1h)
SUP=$($BIN token --config "$DATA/tracegate.toml" --sub bench --groups support --claim tenant=acme --ttl 1h)

# wrk's own percentiles stop at 99%: a done() hook prints p50/p99/p99.9 in microseconds.
cat > "$WORK/pct.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("PCT %d %d %d\n", latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
LUA
# The same, reading real-<size>-0 … real-<size>-(REAL_COUNT-1) in random order (a URL ending
# in `/real-2k` or `/real-100k` names the set; `/real-2k.json`, an object key, the same set in
# a bucket).
for t in 2k 100k; do
  cat "$WORK/pct.lua" - > "$WORK/real-$t.lua" <<LUA
local threads = 0
setup = function(thread) threads = threads + 1; thread:set("id", threads) end
init = function(args) math.randomseed(os.time() + 7919 * id) end
request = function()
  local n = math.random(0, $REAL_COUNT - 1)
  local base, ext = wrk.path:match("^(.-)(%.json)$")
  if base then return wrk.format("GET", base .. "-" .. n .. ext) end
  return wrk.format("GET", wrk.path .. "-" .. n)
end
LUA
done
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }

# Gateway CPU (user + system, clock ticks) of a process, from /proc/<pid>/stat.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

run() { # label url token [pid: also report that process's CPU per request]
  local out rps p50 p99 p999 reqs before after cpu="–"
  [ -n "${4:-}" ] && before=$(cpu_ticks "$4")
  local script=${RUN_SCRIPT:-$WORK/pct.lua}
  if [ -z "${RUN_SCRIPT:-}" ]; then
    case $2 in */real-2k | */real-2k.json) script=$WORK/real-2k.lua ;; */real-100k | */real-100k.json) script=$WORK/real-100k.lua ;; esac
  fi
  # PERF=1: the gateway's rows are also sampled by perf (DWARF call graphs, 999 Hz) for the
  # length of the run, and each row is followed by where its CPU went, by category
  # (scripts/perf-categories.py). Sampling costs the gateway throughput: read the req/s of a
  # run without PERF.
  local perf_pid=""
  if [ -n "${PERF:-}" ] && [ -n "${4:-}" ]; then
    perf record -q -F 999 --call-graph dwarf,16384 -p "$4" -o "$WORK/perf.data" -- sleep "$DURATION" 2>"$WORK/perf.err" & perf_pid=$!
  fi
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$script" -H "Authorization: Bearer $3" "$2")
  if [ -n "$perf_pid" ] && ! wait "$perf_pid"; then
    echo "perf record failed for $1 (PERF=1 needs root or kernel.perf_event_paranoid <= 1):" >&2
    cat "$WORK/perf.err" >&2
    exit 1
  fi
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx responses for $1" >&2; echo "$out" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ -n "${4:-}" ]; then
    after=$(cpu_ticks "$4")
    cpu=$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$HZ" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }')
  fi
  read -r p50 p99 p999 < <(echo "$out" | awk '$1=="PCT" {print $2, $3, $4}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$(ms "$p999")" "$cpu"
  if [ -n "$perf_pid" ]; then
    echo; echo "Where the CPU of \"$1\" went:"; echo
    perf script -i "$WORK/perf.data" 2>/dev/null | python3 scripts/perf-categories.py "$cpu"
    echo
    rm -f "$WORK/perf.data"
  fi
}

# A/B of two builds instead of the table: AB="BIN_A BIN_B" [ROUNDS=6] [AB_SIZES="2k 100k real-2k real-100k"]
# [AB_ROLE=engineer|support] [AB_DEPLOY=embedded|s3]. Runs alternate A and B; each is a fresh
# gateway, 1 s of warm-up, then one measured wrk run of the role. On the embedded default
# (`AB_DEPLOY=embedded`) each gateway gets a fresh audit directory (same disk as the data); with
# `AB_DEPLOY=s3` it is one replica of the S3 + PostgreSQL deployment set up as for the table
# below (the two started replicas are stopped first; every run appends to the same PostgreSQL
# trail). Compare CPU µs/request within pairs: it moves far less with the machine's load than
# req/s does.
AB_DEPLOY=${AB_DEPLOY:-embedded}
case $AB_DEPLOY in embedded | s3) ;; *) echo "AB_DEPLOY: embedded or s3" >&2; exit 2 ;; esac
ab_loop() { # config-of-run (a function: run number -> config path) engineer-token support-token
  local cfg_of=$1 token n=0 round t side bin url warm cfg
  read -r -a ab_bins <<<"$AB"
  AB_ROLE=${AB_ROLE:-engineer}
  case $AB_ROLE in engineer) token=$2 ;; support) token=$3 ;; *) echo "AB_ROLE: engineer or support" >&2; exit 2 ;; esac
  echo "A/B, $AB_DEPLOY, $AB_ROLE role, wrk -t2 -c$CONNECTIONS -d$DURATION per run; A = ${ab_bins[0]}, B = ${ab_bins[1]}"
  echo
  echo "| run | req/s | p50 | p99 | p99.9 | gateway CPU µs/req |"
  echo "|---|---|---|---|---|---|"
  for round in $(seq 1 "${ROUNDS:-6}"); do
    for t in ${AB_SIZES:-2k}; do
      for side in A B; do
        bin=${ab_bins[0]}; [ "$side" = B ] && bin=${ab_bins[1]}
        n=$((n + 1))
        cfg=$("$cfg_of" "$n")
        RUST_LOG=warn $bin serve --config "$cfg" --listen 127.0.0.1:$((BASE_PORT + 3)) 2>>"$WORK/ab.log" & pids+=($!)
        wait_http http://127.0.0.1:$((BASE_PORT + 3))/readyz
        url=http://127.0.0.1:$((BASE_PORT + 3))/v1/traces/bench-$t
        warm=()
        case $t in real-*) url=http://127.0.0.1:$((BASE_PORT + 3))/v1/traces/$t; warm=(-s "$WORK/$t.lua") ;; esac
        wrk -t2 -c"$CONNECTIONS" -d1s "${warm[@]}" -H "Authorization: Bearer $token" "$url" >/dev/null
        run "$side $t, round $round" "$url" "$token" "${pids[-1]}"
        kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
        rm -rf "$WORK/ab-audit-$n"
      done
    done
  done
}
embedded_ab_config() { # run number: a copy of the config with its own audit directory
  cp "$DATA/tracegate.toml" "$DATA/ab-$1.toml"
  printf '\n[audit]\ndir = "%s"\n' "$WORK/ab-audit-$1" >> "$DATA/ab-$1.toml"
  echo "$DATA/ab-$1.toml"
}
if [ -n "${AB:-}" ] && [ "$AB_DEPLOY" = embedded ]; then
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  ab_loop embedded_ab_config "$ENG" "$SUP"
  exit 0
fi

if [ -z "${AB:-}" ]; then
echo "wrk -t2 -c$CONNECTIONS -d$DURATION, loopback, $(nproc) cores shared by client and server"
echo
echo "| target | req/s | p50 | p99 | p99.9 | gateway CPU µs/req |"
echo "|---|---|---|---|---|---|"
GW=${pids[-1]}
for t in 2k 100k; do
  run "nginx static, $t"                http://127.0.0.1:$((BASE_PORT + 1))/v1/traces/bench-$t x
  run "nginx proxy hop, $t"             http://127.0.0.1:$((BASE_PORT + 2))/v1/traces/bench-$t x
  run "tracegate engineer (all fields), $t" http://127.0.0.1:$BASE_PORT/v1/traces/bench-$t "$ENG" "$GW"
  run "tracegate support (projected), $t"   http://127.0.0.1:$BASE_PORT/v1/traces/bench-$t "$SUP" "$GW"
done
for t in 2k 100k; do
  run "nginx proxy hop, realistic $t ($REAL_COUNT distinct)"  http://127.0.0.1:$((BASE_PORT + 2))/v1/traces/real-$t x
  run "tracegate engineer, realistic $t ($REAL_COUNT distinct)" http://127.0.0.1:$BASE_PORT/v1/traces/real-$t "$ENG" "$GW"
done

# Side measurement: the same gateway with its audit log on tmpfs, so the difference to the
# engineer rows above is what the durable flush costs on this disk.
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
SHM=$(mktemp -d /dev/shm/tracegate-bench.XXXXXX)
cp "$DATA/tracegate.toml" "$DATA/tracegate-tmpfs.toml"
printf '\n[audit]\ndir = "%s"\n' "$SHM/audit" >> "$DATA/tracegate-tmpfs.toml"
RUST_LOG=warn $BIN serve --config "$DATA/tracegate-tmpfs.toml" --listen 127.0.0.1:$BASE_PORT 2>"$WORK/gw-tmpfs.log" & pids+=($!)
wait_http http://127.0.0.1:$BASE_PORT/healthz
for t in 2k 100k; do
  run "tracegate engineer, audit log on tmpfs (no flush cost), $t" http://127.0.0.1:$BASE_PORT/v1/traces/bench-$t "$ENG" "${pids[-1]}"
done
rm -rf "$SHM"
fi

[ -z "${AB:-}" ] && [ "${SCALE:-1}" = 0 ] && exit 0

# The embedded gateway and its nginx stop first: the S3 rows get the machine to themselves.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true

# The scaled-out deployment, on a second quickstart layout (its own keys and policy copy).
SDATA=$WORK/scale-data
$BIN quickstart --listen 127.0.0.1:$BASE_PORT --data "$SDATA" >/dev/null 2>&1 & qs=$!
wait_http http://127.0.0.1:$BASE_PORT/healthz
kill "$qs"; wait "$qs" 2>/dev/null || true
printf '\n[limits]\nrequests_per_minute = 100000000\nrequest_burst = 1000000\n' >> "$SDATA/tracegate.toml"
BENCH_S3=${BENCH_S3:-s3s-fs}
# shellcheck source=scripts/install-s3s-fs.sh
if [ "$BENCH_S3" = s3s-fs ]; then . scripts/install-s3s-fs.sh; fi
REPLICAS_S3=$BENCH_S3 bash scripts/start-replicas.sh --bin "$BIN" --work "$WORK/scale" --data "$SDATA" --parent-pid $$ 2>"$WORK/replicas.log" & pids+=($!)
until [ -f "$WORK/scale/replicas.env" ]; do
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$WORK/replicas.log" >&2; echo "start-replicas.sh failed" >&2; exit 1; }
  sleep 0.2
done
# shellcheck disable=SC1091
. "$WORK/scale/replicas.env"
SCFG=$SDATA/tracegate.toml
WRITER=$($BIN token --config "$SCFG" --sub bench-writer --groups agents --claim tenant=acme --ttl 1h)
SENG=$($BIN token --config "$SCFG" --sub bench --groups eng --ttl 1h)
SSUP=$($BIN token --config "$SCFG" --sub bench --groups support --claim tenant=acme --ttl 1h)
for t in 2k 100k; do
  # Written through the gateway, as agents write: the writer role masks secrets before storing.
  curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $WRITER" --data-binary "@$DATA/traces/bench-$t.json" "$A_URL/v1/traces/bench-$t"
done
bucket_path=${STORE_URL#s3://}
# The realistic traces go into the bucket as they are (dense with secrets, as a store filled
# before the gateway arrived holds them): written through the gateway, the writer role would
# mask them first. Signed PUTs with the deployment's credential (boto3 comes with moto), then
# the index rebuilt from the bucket, as an operator adopting an existing bucket would. The
# rows without the gateway read presigned URLs (valid for the run), one wrk script per object
# set: the same path and query direct and through the hop, which sends the server's own Host.
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL AWS_ALLOW_HTTP AWS_REGION
BUCKET_PATH=$bucket_path REAL_DIR=$DATA/traces REAL_COUNT=$REAL_COUNT OUT=$WORK python3 - <<'PY'
import os, boto3
from botocore.config import Config
bucket, _, prefix = os.environ["BUCKET_PATH"].partition("/")
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"],
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
key = lambda name: f"{prefix}/{name}" if prefix else name
def presigned(name):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key(name)}, ExpiresIn=3600)
    return url[len(os.environ["AWS_ENDPOINT_URL"]):]
def lua(file, paths):
    with open(os.path.join(os.environ["OUT"], file), "w") as f:
        f.write("local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n")
        f.write("local threads = 0\nsetup = function(thread) threads = threads + 1; thread:set('id', threads) end\n")
        f.write("init = function(args) math.randomseed(os.time() + 7919 * id) end\n")
        f.write("request = function() return wrk.format('GET', paths[math.random(1, #paths)]) end\n")
for size in ("2k", "100k"):
    names = [f"real-{size}-{k}.json" for k in range(int(os.environ["REAL_COUNT"]))]
    for name in names:
        with open(os.path.join(os.environ["REAL_DIR"], name), "rb") as f:
            s3.put_object(Bucket=bucket, Key=key(name), Body=f.read(), ContentType="application/json")
    lua(f"s3-real-{size}.lua", [presigned(n) for n in names])
    lua(f"s3-bench-{size}.lua", [presigned(f"bench-{size}.json")])
PY
for f in "$WORK"/s3-*.lua; do cat "$f" "$WORK/pct.lua" > "$f.tmp" && mv "$f.tmp" "$f"; done
$BIN index rebuild --config "$SCFG" 2>"$WORK/index-rebuild.log"

if [ -n "${AB:-}" ]; then
  # The A/B's gateways take the replicas' place: same config, bucket, database and credential.
  kill "$A_PID" "$B_PID" 2>/dev/null || true
  s3_ab_config() { echo "$SCFG"; }
  ab_loop s3_ab_config "$SENG" "$SSUP"
  exit 0
fi

echo
echo "S3 ($S3_SERVER) + PostgreSQL: $BIN, engineer role; the stored trace is what the writer role stored"
echo
echo "| target | req/s | p50 | p99 | p99.9 | gateway CPU µs/req |"
echo "|---|---|---|---|---|---|"
for t in 2k 100k; do
  RUN_SCRIPT=$WORK/s3-bench-$t.lua run "$S3_SERVER GET, direct, $t" "$S3_URL/" x
  RUN_SCRIPT=$WORK/s3-bench-$t.lua run "nginx proxy hop to $S3_SERVER, $t" "$S3_HOP_URL/" x
  run "tracegate S3+PG, 1 replica, $t"          "$A_URL/v1/traces/bench-$t" "$SENG"
  run "tracegate S3+PG, 1 replica behind nginx, $t" "$NGINX_A_URL/v1/traces/bench-$t" "$SENG"
  run "tracegate S3+PG, 2 replicas behind nginx, $t" "$NGINX_URL/v1/traces/bench-$t" "$SENG"
done
for t in 2k 100k; do
  RUN_SCRIPT=$WORK/s3-real-$t.lua run "nginx proxy hop to $S3_SERVER, realistic $t ($REAL_COUNT distinct)" "$S3_HOP_URL/" x
  run "tracegate S3+PG, 2 replicas behind nginx, realistic $t ($REAL_COUNT distinct)" "$NGINX_URL/v1/traces/real-$t" "$SENG"
done
run "tracegate S3+PG search (PostgreSQL index), 2 replicas behind nginx" "$NGINX_URL/v1/traces?agent=bench-agent" "$SENG"
