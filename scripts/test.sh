#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this project's kind. Installs and starts what the
# tests need (Node.js for the real OIDC provider and the console's browser tests, chromium; pysaml2 + xmlsec1 for the real SAML IdP; the provider itself is started by the tests
# through scripts/start-oidc.sh), then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test.sh: installing Node.js (needed by the real OIDC provider tests)"
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
# SAML: the build's Debian packages (samael links libxmlsec1/libxml2 through bindgen) and
# xmlsec1, the real IdP's signer.
# shellcheck source=scripts/install-build-deps.sh
. scripts/install-build-deps.sh
if ! python3 -c "import saml2" 2>/dev/null; then
  echo "test.sh: installing pysaml2 (the real SAML identity provider, scripts/saml-idp.py)"
  python3 -m pip install -q pysaml2
fi
if ! command -v moto_server >/dev/null; then
  echo "test.sh: installing moto (the S3-compatible server the storage suite runs against)"
  python3 -m pip install -q "moto[server]"
fi
# s3s-fs checks SigV4 signatures (the storage suite's signing path, crates/store/tests/backends.rs).
# shellcheck source=scripts/install-s3s-fs.sh
. scripts/install-s3s-fs.sh
# Two replicas behind a load balancer (scripts/start-replicas.sh, crates/tracegate/tests/replicas.rs):
# nginx in front, curl and the PostgreSQL client to make the run's own database.
scale_debs=()
command -v nginx >/dev/null || scale_debs+=(nginx-light)
command -v curl >/dev/null || scale_debs+=(curl)
command -v createdb >/dev/null || scale_debs+=(postgresql-client)
if [ ${#scale_debs[@]} -gt 0 ]; then
  echo "test.sh: installing ${scale_debs[*]} (replicas behind nginx)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${scale_debs[@]}"
fi
# Install the OIDC provider's packages once, before tests run in parallel.
bash scripts/start-oidc.sh --install-only
# The web console's browser tests (crates/tracegate/tests/console.rs): Debian chromium, driven
# headless by playwright-core from console-tests/ (its own package-lock; no browser download).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium (the console's real-browser tests)"
  apt-get update -qq && apt-get install -y -qq chromium
fi
(cd console-tests && npm ci --no-audit --no-fund --loglevel=error)

export TRACEGATE_REQUIRE_PEERS=1   # a missing peer fails the run instead of skipping a test
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast "$@"

# Coverage-guided fuzzing, briefly (docs/fuzzing.md): every target for FUZZ_SECONDS (20) after a
# nightly build, without a sanitizer to keep the build short; the build is kept outside the
# checkout so fresh clones on this machine reuse the compiled dependencies. The suite's run is
# seeded (FUZZ_SEED, default 1) so a green run is reproducible; long exploratory runs are
# `bash scripts/fuzz.sh SECONDS`, unseeded, and whatever they find joins the corpus.
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  FUZZ_SEED="${FUZZ_SEED:-1}" FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" \
    FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tracegate/fuzz-target}" \
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
