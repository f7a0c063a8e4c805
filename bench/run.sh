#!/usr/bin/env bash
# calsync against vdirsyncer on a local Radicale, CalDAV -> CalDAV: initial, no-op and
# incremental sync of 100 and 1,000 events, each timed with requests, bytes, seconds and peak
# RSS. Builds calsync --release, then runs ../shared/peerbench/run.sh twice: on loopback
# (--sizes "100 1000") and with 50 ms of simulated round trip per request (--sizes 1000), the
# setting of DESIGN.md's cost target. Markdown tables go to stdout and to bench/out/*.md,
# the raw figures to bench/out/*.json. Not part of the test suite.
#
#   bench/run.sh [--quick]      --quick: loopback at 100 events only
#
# Needs Rust, Python 3 with venv/pip (peerbench installs vdirsyncer and Radicale, pinned, into
# a venv under /tmp once) and /usr/bin/time (Debian package `time`). Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PEERBENCH="${PEERBENCH:-../shared/peerbench/run.sh}"
[ -x "$PEERBENCH" ] || [ -f "$PEERBENCH" ] || { echo "bench: $PEERBENCH not found (set PEERBENCH)" >&2; exit 69; }
mkdir -p bench/out
cargo build --release --locked
CALSYNC="$PWD/target/release/calsync"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
run() {  # name, peerbench arguments...
  local name="$1"; shift
  echo "## $name" | tee "bench/out/$stamp-$name.md"
  bash "$PEERBENCH" --calsync "$CALSYNC" --json "$PWD/bench/out/$stamp-$name.json" "$@" \
    | tee -a "bench/out/$stamp-$name.md"
}
if [ "${1:-}" = "--quick" ]; then
  run loopback --sizes 100
else
  run loopback --sizes "100 1000"
  run rtt50 --rtt-ms 50 --sizes 1000
fi
