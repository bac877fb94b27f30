#!/usr/bin/env bash
#! Start the real OpenID Provider (npm `oidc-provider`) used by tracegate's identity tests.
#
# Usage:
#   scripts/start-oidc.sh --install-only
#       install the provider's npm packages (npm ci) into scripts/oidc-provider/node_modules
#   scripts/start-oidc.sh PORT [--config FILE] [--pid-file FILE] [--log FILE] [--parent-pid PID]
#       install if needed, start the provider on http://127.0.0.1:PORT in the background, wait
#       until its discovery document answers, then print its pid on stdout (and write it to
#       --pid-file). --parent-pid makes the provider exit when that process is gone.
#
# Nothing is installed globally; a missing node/npm is an error, never a silent skip.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="$here/oidc-provider"

die() { echo "start-oidc.sh: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is not installed (Node.js >= 20 is required; scripts/test.sh installs it)"
command -v npm >/dev/null || die "npm is not installed (scripts/test.sh installs it)"

install() {
  # Tests run in parallel: one install at a time, and a second caller finds it done. The lock
  # lives outside node_modules, which `npm ci` deletes and recreates.
  exec 9>"${TMPDIR:-/tmp}/tracegate-oidc-install.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [ ! -f "$dir/node_modules/oidc-provider/package.json" ]; then
    echo "start-oidc.sh: installing oidc-provider into $dir/node_modules" >&2
    if [ -f "$dir/package-lock.json" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    else
      (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
    fi
  fi
  exec 9>&-
}

if [ "${1:-}" = "--install-only" ]; then
  install
  exit 0
fi

port="${1:-}"
[[ "$port" =~ ^[0-9]+$ ]] || die "usage: start-oidc.sh PORT [--config FILE] [--pid-file FILE] [--log FILE] [--parent-pid PID] | --install-only"
shift

config="" pid_file="" log="" parent=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --pid-file) pid_file="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --parent-pid) parent="$2"; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done
[ -n "$log" ] || log="$(mktemp -t tracegate-oidc.XXXXXX.log)"

install

node_args=(--port "$port")
[ -n "$config" ] && node_args+=(--config "$config")
[ -n "$parent" ] && node_args+=(--parent-pid "$parent")

discovery="http://127.0.0.1:$port/.well-known/openid-configuration"

# Starts the provider and waits for it. The provider prints `ready <issuer>` once listening;
# watching its log costs nothing, unlike a probe process per try on a loaded machine. Then one
# real request to discovery. Returns 1 (provider killed, log kept) if it does not come up.
launch() {
  # Detached from our stdout so a caller reading it sees EOF as soon as this script exits.
  node "$dir/provider.js" "${node_args[@]}" </dev/null >"$log" 2>&1 &
  pid=$!
  local deadline=$(( $(date +%s) + ${OIDC_START_TIMEOUT:-45} ))
  until grep -q '^ready ' "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "start-oidc.sh: the provider exited before answering:" >&2
      cat "$log" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "start-oidc.sh: the provider did not start listening within ${OIDC_START_TIMEOUT:-45}s ($(grep -E '^State' /proc/$pid/status 2>/dev/null)); log:" >&2
      cat "$log" >&2
      kill "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.1
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if node -e "fetch(process.argv[1], {signal: AbortSignal.timeout(10000)}).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "$discovery" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "start-oidc.sh: the provider is listening but $discovery does not answer; log:" >&2
  cat "$log" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

# A provider that never came up is retried (a slow start on a loaded machine was seen once).
for attempt in 1 2 3; do
  if launch; then
    [ -n "$pid_file" ] && echo "$pid" >"$pid_file"
    echo "$pid"
    exit 0
  fi
  echo "start-oidc.sh: attempt $attempt failed" >&2
  sleep 1
done
die "the provider did not come up on port $port after 3 attempts (logs above)"
