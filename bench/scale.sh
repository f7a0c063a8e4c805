#!/usr/bin/env bash
# The scale table: how calsync's cost grows with the calendar, on every path. One command:
#
#   bench/scale.sh            # everything (about an hour on a shared 2-core machine, most of it
#                             # Xandikos' own time for the 10,000-event first syncs)
#   bench/scale.sh --quick    # a few minutes: ics→ics at 100 and 1,000, the servers at 300,
#                             # the fakes at 1,000
#   options: --sizes "100 1000 10000 100000"   ics→ics sizes
#            --server-sizes "1000 10000" --server-rtt-ms 50   the CalDAV server part
#            --fake-sizes "1000 10000" --fake-rtt-ms 50       the Graph and Google part
#            --skip "ics servers fakes"                       leave parts out
#
# Three parts, each a Markdown table, then the growth per event (bench/growth.py):
#  1. ics→ics: for each size N an .ics feed of N events in the peer benchmark's mix
#     (bench/feed.py, fixed seed; 70 % public, 10 % private, 10 % weekly series with an override,
#     5 % all-day, 5 % confidential) published into an .ics file, three runs on one state file:
#     the first sync, a no-op sync, and a sync after 1 % of the events changed; each measured
#     with /usr/bin/time (wall, user+system CPU, peak RSS).
#  2. CalDAV server: caldav→caldav and ics→caldav against Xandikos (pinned below; its own venv
#     under /tmp), through peerbench's counting proxy with a simulated round trip:
#     bench/server_scale.py (first / no-op / 1 % update; wall, CPU, RSS, requests, bytes, the
#     server's busy time and requests / 4 × RTT as lower bounds, the target read back).
#  3. Graph and Google: graph→ics, ics→graph (the `graph` bench target) and google→ics,
#     ics→google (the `google-bench` example) against GraphFake and GoogleFake with a fixed
#     round trip (first / no-op / 1 % update; requests, requests per change, lower bound).
#
# Needs Rust, Python 3 with venv and pip, /usr/bin/time (Debian package `time`); reads
# ../shared/peerbench (gen.py, proxy.py, bench.py; PEERBENCH_DIR overrides). Writes under
# bench/out/ (and the venv and the servers' scratch folders under /tmp, removed as it goes).
# Talks to 127.0.0.1 only; every process it starts is stopped by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES="100 1000 10000 100000"
SERVER_SIZES="1000 10000"
SERVER_RTT=50
FAKE_SIZES="1000 10000"
FAKE_RTT=50
SKIP=""
XANDIKOS_REQ="xandikos==0.4.10"
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="${2:?--sizes needs a list}"; shift 2 ;;
    --server-sizes) SERVER_SIZES="${2:?}"; shift 2 ;;
    --server-rtt-ms) SERVER_RTT="${2:?}"; shift 2 ;;
    --fake-sizes) FAKE_SIZES="${2:?}"; shift 2 ;;
    --fake-rtt-ms) FAKE_RTT="${2:?}"; shift 2 ;;
    --skip) SKIP="${2:?}"; shift 2 ;;
    --quick) SIZES="100 1000"; SERVER_SIZES="300"; FAKE_SIZES="1000"; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
skip() { case " $SKIP " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time is missing (apt install time)" >&2; exit 69; }
PEERBENCH_DIR="${PEERBENCH_DIR:-$PWD/../shared/peerbench}"
export PEERBENCH_DIR
[ -f "$PEERBENCH_DIR/gen.py" ] || { echo "scale.sh: $PEERBENCH_DIR/gen.py not found (set PEERBENCH_DIR)" >&2; exit 69; }

cargo build --release --locked >&2
BIN="$PWD/target/release/calsync"
OUT="$PWD/bench/out/scale-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
T0=$(date +%s)

{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ): calsync $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' with uncommitted changes in src') ($("$BIN" --version 2>/dev/null | head -1)), release build;"
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), shared with other work), Linux $(uname -r),"
  echo "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM; $(rustc --version); $(python3 --version); load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
} > "$OUT/machine.md"

# ---------------------------------------------------------------------------------- ics → ics
measure() {  # dir label -> "wall cpu rss_kib"
  local dir="$1" label="$2"
  /usr/bin/time -f "%e %U %S %M" -o "$dir/$label.time" "$BIN" --config "$dir/calsync.toml" sync \
    > "$dir/$label.log" || { echo "scale.sh: $label sync failed in $dir" >&2; tail -3 "$dir/$label.log" >&2; exit 1; }
  awk '{ printf "%.2f %.2f %d\n", $1, $2 + $3, $4 }' "$dir/$label.time"
}

if ! skip ics; then
  echo "scale.sh: ics→ics at $SIZES" >&2
  {
  echo "| events | run | wall s | CPU s | peak RSS MiB | µs per event (wall) | growth vs previous size |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
  declare -A PREV_WALL
  PREV_N=""
  for n in $SIZES; do
    dir="$OUT/ics/$n"
    mkdir -p "$dir"
    python3 bench/feed.py --n "$n" "$dir/feed.ics"
    python3 bench/feed.py --n "$n" --update-percent 1 "$dir/feed-updated.ics"
    cat > "$dir/calsync.toml" <<EOF
state = "calsync.db"
[[pair]]
name = "scale"
[pair.source]
kind = "ics"
path = "feed.ics"
[pair.target]
kind = "ics"
path = "public.ics"
EOF
    for label in first noop update; do
      if [ "$label" = update ]; then cp "$dir/feed-updated.ics" "$dir/feed.ics"; fi
      read -r wall cpu rss < <(measure "$dir" "$label")
      per=$(awk -v w="$wall" -v n="$n" 'BEGIN { printf "%.1f", w * 1e6 / n }')
      growth="—"
      if [ -n "$PREV_N" ] && [ -n "${PREV_WALL[$label]:-}" ]; then
        growth=$(awk -v w="$wall" -v p="${PREV_WALL[$label]}" -v n="$n" -v m="$PREV_N" \
          'BEGIN { if (p > 0) printf "%.1f× time for %.0f× events", w / p, n / m; else print "—" }')
      fi
      printf "| %s | %s | %s | %s | %.0f | %s | %s |\n" "$n" "$label" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$per" "$growth"
      PREV_WALL[$label]="$wall"
    done
    rm -f "$dir/feed.ics" "$dir/feed-updated.ics" "$dir/public.ics"  # up to 100 MB each
    PREV_N="$n"
  done
  } | tee "$OUT/ics.md"
fi

# ---------------------------------------------------------------------- Graph and Google fakes
if ! skip fakes; then
  echo "scale.sh: Graph and Google fakes at $FAKE_SIZES, ${FAKE_RTT} ms RTT" >&2
  cargo build --release --locked --example google-bench >&2
  cargo bench --locked --bench graph --no-run >&2
  header=""
  for n in $FAKE_SIZES; do
    cargo bench --locked --bench graph -- "$n" "$FAKE_RTT" $header 2> "$OUT/graph-$n.err"
    header="--no-header"
  done | tee "$OUT/fakes.md"
  for n in $FAKE_SIZES; do
    target/release/examples/google-bench "$BIN" "$n" "$FAKE_RTT" 4 --no-header 2> "$OUT/google-$n.err"
  done | tee -a "$OUT/fakes.md"
fi

# -------------------------------------------------------------------------------- CalDAV server
if ! skip servers; then
  echo "scale.sh: caldav→caldav and ics→caldav on Xandikos at $SERVER_SIZES, ${SERVER_RTT} ms RTT" >&2
  PY=python3
  KEY="$(printf '%s\n' "$XANDIKOS_REQ" "$("$PY" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-12)"
  XVENV="${SCALE_XANDIKOS_VENV:-/tmp/calsync-scale-xandikos-venv-$KEY}"
  if [ ! -x "$XVENV/bin/xandikos" ]; then
    echo "scale.sh: setting up $XVENV (once)" >&2
    rm -rf "$XVENV"
    "$PY" -m venv "$XVENV" >&2 && "$XVENV/bin/python" -m pip install --quiet --disable-pip-version-check "$XANDIKOS_REQ" >&2 \
      || { rm -rf "$XVENV"; echo "scale.sh: could not install $XANDIKOS_REQ" >&2; exit 69; }
  fi
  echo "Xandikos $("$XVENV/bin/xandikos" --version 2>/dev/null | sed 's/^xandikos //') (dulwich $("$XVENV/bin/python" -c 'import dulwich; print(".".join(map(str, dulwich.__version__)))'), $("$XVENV/bin/python" --version))." >> "$OUT/machine.md"
  WORK="$(mktemp -d /tmp/calsync-scale-servers.XXXXXX)"
  trap 'rm -rf "$WORK"' EXIT
  "$XVENV/bin/python" bench/server_scale.py --calsync "$BIN" --xandikos "$XVENV/bin/xandikos" \
    --sizes "$SERVER_SIZES" --rtt-ms "$SERVER_RTT" --json "$OUT/servers.json" --work "$WORK" --header \
    2> >(grep -v -e '^Exception ignored' -e '^Traceback' -e '^  File ' -e '^ImportError' >&2) | tee "$OUT/servers.md"
  for d in "$WORK"/*/; do  # keep the logs, not the scratch
    mkdir -p "$OUT/servers/$(basename "$d")"
    cp "$d"/*.log "$d"/*.time "$OUT/servers/$(basename "$d")/" 2>/dev/null || true
  done
fi

echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); the whole command took $(( ($(date +%s) - T0) / 60 )) min." >> "$OUT/machine.md"
{
  echo "## Machine"; echo; cat "$OUT/machine.md"; echo
  [ -f "$OUT/ics.md" ] && { echo "## ics → ics"; echo; cat "$OUT/ics.md"; echo; }
  [ -f "$OUT/servers.md" ] && { echo "## CalDAV server (Xandikos)"; echo; cat "$OUT/servers.md"; echo; }
  [ -f "$OUT/fakes.md" ] && { echo "## Graph and Google (fakes)"; echo; cat "$OUT/fakes.md"; echo; }
  echo "## Growth per event"; echo
  python3 bench/growth.py "$OUT"/ics.md "$OUT"/servers.md "$OUT"/fakes.md || true
} > "$OUT/table.md"
echo >&2 "scale.sh: the whole table in $OUT/table.md"
cat "$OUT/table.md"
