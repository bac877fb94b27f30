#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ (cargo-fuzz, libFuzzer, nightly), each for a
# bounded time: `scripts/fuzz.sh [SECONDS]` (default 60 per target). Seeds come from the
# checked-in fuzz/corpus/<target>/; what the fuzzer adds goes to a scratch directory, never into
# the repository. Prints the executions run per target; exits non-zero on any crash, leak or
# hang, leaving the input in fuzz/artifacts/<target>/.
#
# A crash found here: minimise it (`cargo +nightly fuzz tmin <target> <artifact>`), add it to
# fuzz/corpus/<target>/ (the stable replay test `cargo test -p tracegate-fuzz-targets` then
# runs it forever after) and as a regression test in the crate it belongs to.
#
# Environment: FUZZ_SANITIZER (address, the default, or none), FUZZ_TARGETS (a space-separated
# subset), FUZZ_TARGET_DIR (where to build; default fuzz/target: point it outside the checkout to
# keep the nightly build of the dependencies between fresh clones). Build parallelism follows
# cargo's own CARGO_BUILD_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
case "$secs" in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS per target]" >&2; exit 2 ;; esac

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: a nightly toolchain is needed (cargo-fuzz builds with -Z flags)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The same flags for build and run, so that `run` does not rebuild.
flags=(--sanitizer "${FUZZ_SANITIZER:-address}")
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then flags+=(--target-dir "$FUZZ_TARGET_DIR"); fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
start=$(date +%s)
echo "fuzz.sh: building $(echo $targets | wc -w) targets (sanitizer ${FUZZ_SANITIZER:-address})"
cargo +nightly fuzz build "${flags[@]}"
built=$(date +%s)
echo "fuzz.sh: built in $((built - start))s; fuzzing each target for ${secs}s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0
failed=0
report=""
for t in $targets; do
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  set +e
  cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch/$t" "$PWD/fuzz/corpus/$t" -- \
    -max_total_time="$secs" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //' || true)
  found=$(find "$scratch/$t" -type f | wc -l || true)
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    line=$(printf '%-14s %10s execs  cov %6s  %5s new inputs  ok' "$t" "${execs:-?}" "${cov:-?}" "$found")
  else
    failed=$((failed + 1))
    line=$(printf '%-14s %10s execs  cov %6s  CRASH (exit %s)' "$t" "${execs:-?}" "${cov:-?}" "$rc")
    mkdir -p "fuzz/artifacts/$t" && cp "$log" "fuzz/artifacts/$t/fuzz.log"
    echo "fuzz.sh: $t failed (whole log: fuzz/artifacts/$t/fuzz.log); the panic and the end:" >&2
    grep -m1 -A4 "panicked at" "$log" >&2 || true
    tail -25 "$log" >&2
    ls -1 "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|  fuzz/artifacts/$t/|" >&2 || true
  fi
  echo "fuzz.sh: $line"
  report="$report$line"$'\n'
done
echo "fuzz.sh: ${secs}s per target, $(( $(date +%s) - start ))s in all (build $((built - start))s)"
printf '%s' "$report"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
