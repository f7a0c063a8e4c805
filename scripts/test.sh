#!/usr/bin/env bash
# The one test command of calsync: scripts/test.sh [cargo test arguments...]
#
# The CalDAV tests run against a real Radicale, pinned below. This script installs it into
# .venv-test/ in the repository root (once: a venv that already holds the pinned versions is
# kept, and one that lacks a pinned package gets just that one), points the tests at it
# through CALSYNC_TEST_RADICALE and runs `cargo test --locked` with the arguments given, e.g.
# `scripts/test.sh --test testkit`. The same venv holds the pinned prometheus_client, the
# independent parser of the metrics file; trustme, the TLS tests' certificate authority; and
# icalendar with recurring-ical-events, the independent reader of the real-world corpus
# (CALSYNC_TEST_PYTHON).
# Needs only Rust, Python 3 and pip (pip's own configuration, such as a local wheel folder,
# is used as it stands). PYTHON overrides the interpreter that creates the venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RADICALE_VERSION="3.9.0"
# The independent parser the metrics-file tests check calsync's Prometheus output with.
PROMETHEUS_CLIENT_VERSION="0.26.0"
# A throw-away certificate authority for the TLS tests (a local HTTPS server whose CA only
# SSL_CERT_FILE vouches for).
TRUSTME_VERSION="1.2.1"
# The independent reader of the real-world corpus test (tests/support/corpus_compare.py):
# Python's icalendar with recurring-ical-events (and the x-wr-timezone it uses).
ICALENDAR_VERSION="7.3.0"
RECURRING_ICAL_EVENTS_VERSION="3.8.2"
X_WR_TIMEZONE_VERSION="2.0.1"
VENV="$PWD/.venv-test"
PY="${PYTHON:-python3}"

radicale_is_pinned() {
  # Runs the installed entry point itself, so a venv whose scripts point at a moved or
  # removed interpreter counts as broken and is made anew.
  [ -x "$VENV/bin/radicale" ] \
    && [ "$("$VENV/bin/radicale" --version 2>/dev/null)" = "$RADICALE_VERSION" ]
}

# is_pinned NAME==VERSION: the venv holds exactly that version of the package.
is_pinned() {
  [ "$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('${1%%==*}'))" \
       2>/dev/null)" = "${1##*==}" ]
}

# pip_install PACKAGE...: into the venv, with its own pip or (a venv made without one) the
# system's (pip >= 22.3 knows --python).
pip_install() {
  if "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  else
    "$PY" -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check "$@"
  fi
}

PINNED=("radicale==$RADICALE_VERSION" "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
        "trustme==$TRUSTME_VERSION" "icalendar==$ICALENDAR_VERSION"
        "recurring-ical-events==$RECURRING_ICAL_EVENTS_VERSION"
        "x-wr-timezone==$X_WR_TIMEZONE_VERSION")
if ! radicale_is_pinned; then
  # No venv, or a broken one: made anew with every pinned package.
  echo "test.sh: installing ${PINNED[*]} into $VENV" >&2
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 without python3-venv has no ensurepip: make the venv bare.
    rm -rf "$VENV"
    "$PY" -m venv --without-pip "$VENV"
  fi
  pip_install "${PINNED[@]}"
else
  # A good venv keeps what it holds (other packages too); only missing pins are added.
  missing=()
  for package in "${PINNED[@]}"; do is_pinned "$package" || missing+=("$package"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]} into $VENV" >&2
    pip_install "${missing[@]}"
  fi
fi
radicale_is_pinned || {
  echo "test.sh: $VENV/bin/radicale does not report version $RADICALE_VERSION" >&2
  exit 1
}
for package in "${PINNED[@]}"; do
  is_pinned "$package" || { echo "test.sh: $VENV has no $package" >&2; exit 1; }
done

# The whole suite (no arguments) also checks what cargo test cannot: the systemd units,
# offline, and the packaging files with the distributions' tools. Each script installs the
# tools it needs when they are missing (apt-get, as root on Debian or Ubuntu; cargo install
# for cargo-deb) and skips a check it cannot run, saying so; the skips are listed again at
# the end, so a green run that checked less is visible as such.
skipped_list="$(mktemp)"
trap 'rm -f "$skipped_list"' EXIT
export CALSYNC_CHECK_SKIPPED="$skipped_list"
if [ $# -eq 0 ]; then
  scripts/check-systemd.sh
  scripts/check-packaging.sh
fi

export CALSYNC_TEST_RADICALE="$VENV/bin/radicale"
export CALSYNC_TEST_PYTHON="$VENV/bin/python"
status=0
cargo test --locked "$@" || status=$?
if [ $# -eq 0 ]; then
  if [ -s "$skipped_list" ]; then
    echo "test.sh: these checks were SKIPPED on this machine (run as root on Debian or Ubuntu to include them):" >&2
    sed 's/^/test.sh:   /' "$skipped_list" >&2
  else
    echo "test.sh: the systemd and packaging checks all ran" >&2
  fi
fi
exit "$status"
