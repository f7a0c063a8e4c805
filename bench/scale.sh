#!/usr/bin/env bash
# The scale table: how calsync's cost grows with the calendar.
#
#   bench/scale.sh [--sizes "100 1000 10000 100000"] [--quick]
#
# For each size N: an .ics feed of N events in the peer benchmark's mix (bench/feed.py, fixed
# seed; 70 % public, 10 % private, 10 % weekly series with an override, 5 % all-day, 5 %
# confidential) is published into an .ics file by the release build, three runs on one state
# file: the first sync, a no-op sync, and a sync after 1 % of the events changed. Each run is
# measured with /usr/bin/time (wall, user+system CPU, peak RSS); the table also gives the time
# per event and the growth against the size before. --quick: 100 and 1,000 only.
#
# Needs Rust, Python 3 and /usr/bin/time (Debian package `time`); reads
# ../shared/peerbench/gen.py (PEERBENCH_DIR overrides). Writes under bench/out/ only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES="100 1000 10000 100000"
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES="${2:?--sizes needs a list}"; shift 2 ;;
    --quick) SIZES="100 1000"; shift ;;
    *) echo "scale.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time is missing (apt install time)" >&2; exit 69; }
cargo build --release --locked >&2
BIN="$PWD/target/release/calsync"
OUT="$PWD/bench/out/scale-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

measure() {  # dir label -> "wall cpu rss_kib"
  local dir="$1" label="$2"
  /usr/bin/time -f "%e %U %S %M" -o "$dir/$label.time" "$BIN" --config "$dir/calsync.toml" sync \
    > "$dir/$label.log" || { echo "scale.sh: $label sync failed in $dir" >&2; tail -3 "$dir/$label.log" >&2; exit 1; }
  awk '{ printf "%.2f %.2f %d\n", $1, $2 + $3, $4 }' "$dir/$label.time"
}

echo "| events | run | wall s | CPU s | peak RSS MiB | µs per event (wall) | growth vs previous size |"
echo "|---:|---|---:|---:|---:|---:|---:|"
declare -A PREV_WALL
PREV_N=""
for n in $SIZES; do
  dir="$OUT/$n"
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
  PREV_N="$n"
done | tee "$OUT/table.md"
echo >&2 "scale.sh: logs and the table in $OUT"
