#!/usr/bin/env bash
# Puts s3s-fs (an S3 server in Rust that checks every SigV4 signature) on the PATH of the
# sourcing script: built once per machine outside the checkout (~216 s of CPU with -j1), then
# reused. Sourced by scripts/test.sh (the storage suite's signing path) and scripts/bench-http.sh
# (the S3 rows: moto answers too few requests a second to measure a gateway in front of it).
s3s_root="${XDG_CACHE_HOME:-$HOME/.cache}/tracegate/s3s-fs"
if ! command -v s3s-fs >/dev/null && [ ! -x "$s3s_root/bin/s3s-fs" ]; then
  echo "installing s3s-fs 0.14.1 into $s3s_root" >&2
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root "$s3s_root"
fi
export PATH="$s3s_root/bin:$PATH"
