#!/usr/bin/env bash
# The one test command of calsync: scripts/test.sh [cargo test arguments...]
#
# The CalDAV tests run against a real Radicale, pinned below. This script installs it into
# .venv-test/ in the repository root (once: a venv that already holds the pinned version is
# kept), points the tests at it through CALSYNC_TEST_RADICALE and runs `cargo test --locked`
# with the arguments given, e.g. `scripts/test.sh --test testkit`. The same venv holds the
# pinned prometheus_client, the independent parser of the metrics file, and icalendar with
# recurring-ical-events, the independent reader of the real-world corpus (CALSYNC_TEST_PYTHON).
# Needs only Rust, Python 3 and pip (pip's own configuration, such as a local wheel folder,
# is used as it stands). PYTHON overrides the interpreter that creates the venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RADICALE_VERSION="3.9.0"
# The independent parser the metrics-file tests check calsync's Prometheus output with.
PROMETHEUS_CLIENT_VERSION="0.26.0"
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

prometheus_client_is_pinned() {
  [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' \
       2>/dev/null)" = "$PROMETHEUS_CLIENT_VERSION" ]
}

ical_readers_are_pinned() {
  [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(*(m.version(p) for p in ("icalendar", "recurring-ical-events", "x-wr-timezone")))' \
       2>/dev/null)" = "$ICALENDAR_VERSION $RECURRING_ICAL_EVENTS_VERSION $X_WR_TIMEZONE_VERSION" ]
}

PINNED=("radicale==$RADICALE_VERSION" "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
        "icalendar==$ICALENDAR_VERSION" "recurring-ical-events==$RECURRING_ICAL_EVENTS_VERSION"
        "x-wr-timezone==$X_WR_TIMEZONE_VERSION")
if ! radicale_is_pinned || ! prometheus_client_is_pinned || ! ical_readers_are_pinned; then
  echo "test.sh: installing ${PINNED[*]} into $VENV" >&2
  rm -rf "$VENV"
  if "$PY" -m venv "$VENV" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINNED[@]}"
  else
    # Debian's python3 without python3-venv has no ensurepip: make the venv bare and let the
    # system's pip install into it (pip >= 22.3 knows --python).
    rm -rf "$VENV"
    "$PY" -m venv --without-pip "$VENV"
    "$PY" -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check \
      "${PINNED[@]}"
  fi
  radicale_is_pinned || {
    echo "test.sh: $VENV/bin/radicale does not report version $RADICALE_VERSION" >&2
    exit 1
  }
  prometheus_client_is_pinned || {
    echo "test.sh: $VENV has no prometheus_client $PROMETHEUS_CLIENT_VERSION" >&2
    exit 1
  }
  ical_readers_are_pinned || {
    echo "test.sh: $VENV has no icalendar $ICALENDAR_VERSION with recurring-ical-events $RECURRING_ICAL_EVENTS_VERSION" >&2
    exit 1
  }
fi

# The whole suite (no arguments) also checks what cargo test cannot: the systemd units,
# offline, and the packaging files with the distributions' tools (each script installs the
# tools it needs when they are missing, and says SKIPPED when it cannot).
if [ $# -eq 0 ]; then
  scripts/check-systemd.sh
  scripts/check-packaging.sh
fi

export CALSYNC_TEST_RADICALE="$VENV/bin/radicale"
export CALSYNC_TEST_PYTHON="$VENV/bin/python"
exec cargo test --locked "$@"
