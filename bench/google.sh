#!/usr/bin/env bash
# The Google provider against GoogleFake (tests/support/google_fake.rs) with a fixed round
# trip per HTTP request: google→ics and ics→google, initial and no-op sync of N events, each
# with its wall time, requests by kind and the ratio to the latency lower bound
# ceil(requests / in flight) × RTT. Markdown on stdout and in bench/out/. Not part of the
# test suite; talks to 127.0.0.1 only.
#
#   bench/google.sh [events=1000] [rtt_ms=50] [concurrency=4]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p bench/out
cargo build --release --locked
cargo build --release --locked --example google-bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
target/release/examples/google-bench "$PWD/target/release/calsync" "${1:-1000}" "${2:-50}" "${3:-4}" \
  | tee "bench/out/$stamp-google.md"
