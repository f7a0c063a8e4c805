#!/usr/bin/env bash
# Checks the systemd units in systemd/ offline, as they will be installed:
#   - `systemd-analyze verify` on every unit (and an instance of each template) in a staged
#     root holding the units, /usr/bin/calsync and the man pages they name; any warning fails;
#   - `systemd-analyze security --offline` per service: exposure at most MAX_EXPOSURE (x10
#     as systemd counts it; "OK" is below 50) — the README records the score;
#   - the sandbox block of every service is the same text, so the units cannot drift apart.
# Needs systemd-analyze (Debian/Ubuntu package `systemd`); installs it with apt-get when it is
# missing and it can. Skips, saying so, only when it cannot be installed.
# Usage: scripts/check-systemd.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
MAX_EXPOSURE=20
UNITS=systemd
SERVICES=(calsync.service calsync@parish.service calsync-cleanup.service calsync-cleanup@parish.service)
TIMERS=(calsync.timer calsync@parish.timer calsync-cleanup.timer calsync-cleanup@parish.timer)
MARKER="# ---- The sandbox:"

say() { echo "check-systemd: $*" >&2; }
# skipped WHAT: says a check did not run, and lists it in $CALSYNC_CHECK_SKIPPED (a file
# scripts/test.sh prints at its end) when that is set.
skipped() {
  say "SKIPPED $*"
  if [ -n "${CALSYNC_CHECK_SKIPPED:-}" ]; then echo "check-systemd: $*" >>"$CALSYNC_CHECK_SKIPPED"; fi
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing systemd (for systemd-analyze)"
    # The package only provides the tool here; nothing is started in a container.
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd man-db \
      >/dev/null 2>&1 || true
  fi
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  skipped "systemd-analyze is not installed and cannot be installed here (needs root and apt-get)"
  exit 0
fi
say "$(systemd-analyze --version | head -1)"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# The host's own units supply the targets ours hang off (network-online, timers, sysinit).
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/usr/share/man/man1"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$UNITS"/*.service "$UNITS"/*.timer "$root/usr/lib/systemd/system/"
# verify checks that ExecStart= names an executable at the installed path; the binary's
# contents do not matter to it.
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/calsync"
chmod 0755 "$root/usr/bin/calsync"
# verify runs `man` for each Documentation=man:… entry: the generated pages must be there.
cp man/*.1 "$root/usr/share/man/man1/"

failed=0
out="$(cd "$root" && MANPATH="$root/usr/share/man" \
  systemd-analyze verify --root="$root" "${SERVICES[@]}" "${TIMERS[@]}" 2>&1)" || failed=1
# verify exits 0 on unknown keys and unparsable values; it only prints them.
if [ -n "$out" ] || [ "$failed" = 1 ]; then
  say "systemd-analyze verify found problems:"
  echo "$out" >&2
  exit 1
fi
say "verify: ${#SERVICES[@]} services and ${#TIMERS[@]} timers clean"

for unit in "${SERVICES[@]}"; do
  report="$(systemd-analyze security --offline=true --root="$root" \
    --threshold="$MAX_EXPOSURE" "$unit" 2>&1)" || {
    echo "$report" | grep -E '✗|Overall' >&2 || echo "$report" >&2
    say "$unit: exposure above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10))"
    exit 1
  }
  overall="$(echo "$report" | grep 'Overall exposure level' || true)"
  case "$overall" in
    *" OK"* | *" SAFE"* | *" PERFECT"*) say "security: ${overall#*for }" ;;
    *) say "$unit: no OK rating: $overall"; exit 1 ;;
  esac
done

reference=""
for file in "$UNITS"/*.service; do
  block="$(sed -n "/^$MARKER/,\$p" "$file")"
  if [ -z "$block" ]; then
    say "$file has no sandbox block (a line starting '$MARKER')"
    exit 1
  fi
  if [ -z "$reference" ]; then
    reference="$block" reference_file="$file"
  elif [ "$block" != "$reference" ]; then
    say "the sandbox of $file differs from that of $reference_file:"
    diff <(echo "$reference") <(echo "$block") >&2 || true
    exit 1
  fi
done
say "sandbox: the same in every service"
