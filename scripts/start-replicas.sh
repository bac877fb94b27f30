#!/usr/bin/env bash
#! The scaled-out deployment on one machine: an S3-compatible bucket (moto server, or s3s-fs), a fresh
#! PostgreSQL database, two `tracegate serve` replicas over both, and nginx in front of them.
#! Used by crates/tracegate/tests/replicas.rs and scripts/bench-http.sh; also runnable by hand.
#
# Usage:
#   scripts/start-replicas.sh --bin TRACEGATE --work DIR [--data DIR] [--parent-pid PID]
#
#   --bin         the tracegate binary to run (a test passes CARGO_BIN_EXE_tracegate)
#   --work        an empty directory for logs, nginx's files, the S3 server's and replicas' state
#   --data        a data directory laid out by `tracegate quickstart` (default WORK/data, laid
#                 out here when it has no tracegate.toml). Its `[store]` becomes the bucket and
#                 a `[state]` section is appended: edit policy and limits before calling this.
#   --parent-pid  stop everything once that process is gone (a test that was killed)
#
# REPLICAS_S3=s3s-fs serves the bucket with s3s-fs (Rust, checks every SigV4 signature, files on
# disk) instead of moto (the default): moto answers a few hundred GETs a second on this machine,
# so a load run over it measures moto; scripts/bench-http.sh uses s3s-fs.
#
# When everything answers it writes WORK/replicas.env (KEY=VALUE lines: NGINX_URL, NGINX_A_URL,
# S3_HOP_URL, A_URL, A_PID, B_URL, B_PID, S3_URL, S3_SERVER (and MOTO_URL with moto), STORE_URL,
# STATE_URL, CONFIG and the AWS_* variables the replicas were given), then stays in the
# foreground. SIGTERM, SIGINT or the parent's exit stops the replicas, nginx and the S3 server
# and drops the database. A peer that is missing or does not come up is an error, never a skip.
#
# The bucket credential reaches the replicas only through the standard AWS_* environment; the
# config file names the bucket, never the key.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

die() { echo "start-replicas.sh: $*" >&2; exit 1; }

bin="" work="" data="" parent=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --parent-pid) parent="$2"; shift 2 ;;
    *) die "unknown argument $1 (see the header of this script)" ;;
  esac
done
[ -x "$bin" ] || die "--bin must name the tracegate binary"
[ -n "$work" ] || die "--work DIR is required"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
[ -n "$data" ] || data="$work/data"

s3_server=${REPLICAS_S3:-moto}
case $s3_server in
  moto) command -v moto_server >/dev/null || die "moto_server is not installed (python3 -m pip install 'moto[server]'; scripts/test.sh does)" ;;
  s3s-fs) command -v s3s-fs >/dev/null || die "s3s-fs is not installed (scripts/test.sh installs it; put its bin directory on PATH)" ;;
  *) die "REPLICAS_S3 must be moto or s3s-fs" ;;
esac
command -v nginx >/dev/null || die "nginx is not installed (Debian nginx-light; scripts/test.sh installs it)"
command -v createdb >/dev/null || die "createdb is not installed (Debian postgresql-client)"

pids=() db="" pg_user=""
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$db" ]; then dropdb -h 127.0.0.1 -U "$pg_user" --if-exists --force "$db" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits for URL to answer 2xx; fails (with the log named) if PID exits first or it takes too long.
wait_http() { # url pid log
  local deadline=$(( $(date +%s) + ${REPLICAS_START_TIMEOUT:-60} ))
  until curl -sf -o /dev/null "$1"; do
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; die "the process behind $1 exited (log above)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "no answer from $1 (log: $3)"
    sleep 0.1
  done
}

# The bucket credential of this run.
export AWS_ACCESS_KEY_ID="tgreplicas-key-$$"
AWS_SECRET_ACCESS_KEY="tgreplicas-secret-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export AWS_SECRET_ACCESS_KEY

# 1. The bucket on a free port: moto, the bucket created by an (accepted) unsigned request; or
# s3s-fs over a directory holding the bucket, refusing anything not signed with the credential.
s3_port=$(free_port)
s3_url="http://127.0.0.1:$s3_port"
bucket="tracegate-replicas"
prefix="run-$$"
if [ "$s3_server" = moto ]; then
  moto_server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 & pids+=($!)
  wait_http "$s3_url/" "${pids[-1]}" "$work/moto.log"
  curl -sf -X PUT "$s3_url/$bucket" -o /dev/null || die "could not create bucket $bucket on moto"
else
  mkdir -p "$work/s3s/$bucket"
  # TCP_NODELAY on s3s-fs's connections (scripts/tcp-nodelay.c says why: ~40 ms per keep-alive
  # GET without it). Without a C compiler the server runs as it is, and says so.
  preload=
  if cc -O2 -shared -fPIC -o "$work/tcp-nodelay.so" "$here/tcp-nodelay.c" -ldl 2>"$work/tcp-nodelay.log"; then
    preload=$(cd "$work" && pwd)/tcp-nodelay.so
  else
    echo "start-replicas.sh: could not build tcp-nodelay.so (log: $work/tcp-nodelay.log); s3s-fs keeps Nagle on" >&2
  fi
  LD_PRELOAD=$preload s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3s" >"$work/s3s.log" 2>&1 & pids+=($!)
  deadline=$(( $(date +%s) + 30 ))
  # Any answer will do: unsigned requests are refused, which is the point.
  until curl -s -o /dev/null "$s3_url/"; do
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/s3s.log" >&2; die "s3s-fs exited (log above)"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "no answer from s3s-fs (log: $work/s3s.log)"
    sleep 0.1
  done
fi

# 2. A database of this run's own (trust auth on the machine's server, as TestDb connects).
for u in ${PGUSER:-} ${USER:-} postgres root; do
  if psql -h 127.0.0.1 -U "$u" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then pg_user="$u"; break; fi
done
[ -n "$pg_user" ] || die "PostgreSQL at 127.0.0.1:5432 is not usable (tried PGUSER, USER, postgres, root)"
db="tracegate_replicas_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
createdb -h 127.0.0.1 -U "$pg_user" "$db" || die "createdb $db failed"
state_url="postgres://$pg_user@127.0.0.1:5432/$db"

# 3. The config: the quickstart layout, its store moved to the bucket, shared state added.
if [ ! -f "$data/tracegate.toml" ]; then
  port=$(free_port)
  "$bin" quickstart --listen "127.0.0.1:$port" --data "$data" >"$work/quickstart.log" 2>&1 & qs=$!
  wait_http "http://127.0.0.1:$port/healthz" "$qs" "$work/quickstart.log"
  kill "$qs"; wait "$qs" 2>/dev/null || true
fi
config="$data/tracegate.toml"
store_url="s3://$bucket/$prefix"
grep -q '^kind = "local"$' "$config" || die "$config has no embedded [store] to replace"
sed -i -e "s|^kind = \"local\"\$|url = \"$store_url\"|" -e '/^path = "traces"$/d' "$config"
printf '\n[state]\nurl = "%s"\n' "$state_url" >>"$config"

export AWS_ENDPOINT_URL="$s3_url" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
export RUST_LOG="${RUST_LOG:-warn}"

# 4. The replicas. Migrations run once, as a deploy job would, before any replica starts; A
# starts first so the audit signing key it creates on first start is the one B loads.
"$bin" migrate --config "$config" >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; die "tracegate migrate failed"; }
start_replica() { # name -> sets port_<name>, pid_<name>
  local port; port=$(free_port)
  "$bin" serve --config "$config" --listen "127.0.0.1:$port" >"$work/replica-$1.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$port/readyz" "${pids[-1]}" "$work/replica-$1.log"
  printf -v "port_$1" '%s' "$port"
  printf -v "pid_$1" '%s' "${pids[-1]}"
}
start_replica a
start_replica b

# 5. nginx in front, in the foreground of its own prefix: round robin over both replicas
# (NGINX_URL), and a second listener over A alone (NGINX_A_URL, the one-replica bench row).
# A replica that refuses connections is taken out for fail_timeout; GET and PUT (idempotent)
# that could not be delivered go to the next replica, POST does not (nginx's default rule).
lb_port=$(free_port) lb_a_port=$(free_port) s3_hop_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  client_max_body_size 32m;
  upstream replicas {
    server 127.0.0.1:$port_a max_fails=1 fail_timeout=5s;
    server 127.0.0.1:$port_b max_fails=1 fail_timeout=5s;
    keepalive 64;
  }
  upstream replica_a { server 127.0.0.1:$port_a; keepalive 64; }
  upstream s3 { server 127.0.0.1:$s3_port; keepalive 64; }
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$host;
  proxy_next_upstream error timeout;
  server { listen 127.0.0.1:$lb_port; location / { proxy_pass http://replicas; } }
  server { listen 127.0.0.1:$lb_a_port; location / { proxy_pass http://replica_a; } }
  # The baseline hop: nginx in front of the same S3 server, no gateway (scripts/bench-http.sh).
  # The S3 server's own host, so a URL presigned for it verifies through the hop too.
  server { listen 127.0.0.1:$s3_hop_port; location / { proxy_set_header Host 127.0.0.1:$s3_port; proxy_pass http://s3; } }
}
NGINX
nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" & pids+=($!)
wait_http "http://127.0.0.1:$lb_port/healthz" "${pids[-1]}" "$work/nginx/error.log"

cat >"$work/replicas.env.tmp" <<ENV
NGINX_URL=http://127.0.0.1:$lb_port
NGINX_A_URL=http://127.0.0.1:$lb_a_port
S3_HOP_URL=http://127.0.0.1:$s3_hop_port
A_URL=http://127.0.0.1:$port_a
A_PID=$pid_a
B_URL=http://127.0.0.1:$port_b
B_PID=$pid_b
S3_URL=$s3_url
S3_SERVER=$s3_server
STORE_URL=$store_url
STATE_URL=$state_url
CONFIG=$config
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ALLOW_HTTP=$AWS_ALLOW_HTTP
AWS_REGION=$AWS_REGION
ENV
if [ "$s3_server" = moto ]; then echo "MOTO_URL=$s3_url" >>"$work/replicas.env.tmp"; fi
mv "$work/replicas.env.tmp" "$work/replicas.env"
echo "start-replicas.sh: ready; $work/replicas.env" >&2

# Stay up until told to stop, or until the parent is gone. A replica dying is not a reason to
# stop: the test kills one on purpose.
while [ -z "$parent" ] || kill -0 "$parent" 2>/dev/null; do
  sleep 1 & wait $! || true
done
