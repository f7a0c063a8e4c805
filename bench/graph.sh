#!/usr/bin/env bash
# The Graph provider's benchmark: graph→ics and ics→graph at 1,000 events (default) with a
# fixed round trip per request (default 50 ms) against GraphFake, through the release binary.
# Prints a Markdown table (requests, wall time, ratio to requests / 4 in flight × RTT) to
# stdout and bench/out/. Not part of the test suite. Talks to 127.0.0.1 only.
#
#   bench/graph.sh [events] [rtt_ms]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p bench/out
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
cargo bench --locked --bench graph -- "${1:-1000}" "${2:-50}" | tee "bench/out/$stamp-graph.md"
