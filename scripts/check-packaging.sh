#!/usr/bin/env bash
# Validates the packaging files with the distributions' own tools, as far as this machine
# has them:
#   - shellcheck: the Debian maintainer scripts, the PKGBUILD and its install script;
#   - cargo-deb (pinned): builds the .deb from the debug binary (the layout and metadata are
#     what is checked, not the optimised binary), then dpkg-deb shows what it holds: files,
#     modes, conffiles, the maintainer scripts with cargo-deb's systemd snippets; lintian;
#   - rpmspec parses calsync.spec and rpmlint lints it (no errors allowed);
#   - makepkg --printsrcinfo parses and lints the PKGBUILD (run as nobody: makepkg refuses root).
# Each tool is installed when missing (apt-get for Debian packages, cargo install for
# cargo-deb); a check whose tool cannot be installed here is SKIPPED, saying so.
# Usage: scripts/check-packaging.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_DEB_VERSION="3.8.0"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"

say() { echo "check-packaging: $*" >&2; }
# skipped WHAT: says a check did not run, and lists it in $CALSYNC_CHECK_SKIPPED (a file
# scripts/test.sh prints at its end) when that is set.
skipped() {
  say "SKIPPED $*"
  if [ -n "${CALSYNC_CHECK_SKIPPED:-}" ]; then echo "check-packaging: $*" >>"$CALSYNC_CHECK_SKIPPED"; fi
}
fail() { say "FAILED: $*"; exit 1; }

apt_updated=0
# have TOOL PACKAGE...: true when TOOL is on PATH, installing PACKAGE(s) with apt-get first
# when it is missing and this is root on a Debian-like system.
have() {
  local tool="$1"
  shift
  command -v "$tool" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* (for $tool)"
    if [ "$apt_updated" = 0 ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
      >/dev/null 2>&1 || true
  fi
  command -v "$tool" >/dev/null 2>&1
}

# ---- shell scripts
if have shellcheck shellcheck; then
  shellcheck -s sh packaging/deb/postinst packaging/deb/postrm
  # makepkg runs each function under `set -e`, so a failed cd stops it (SC2164); $pkgdir and
  # the metadata arrays are makepkg's (SC2154, SC2034).
  shellcheck -s bash -e SC2034,SC2154,SC2164 packaging/arch/PKGBUILD packaging/arch/calsync.install
  shellcheck scripts/*.sh
  say "shellcheck: maintainer scripts, PKGBUILD, calsync.install and scripts/ clean"
else
  skipped "shellcheck: not installed and cannot be installed here"
fi

# ---- Debian package
if ! command -v cargo-deb >/dev/null 2>&1 || [ "$(cargo-deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  say "installing cargo-deb $CARGO_DEB_VERSION (cargo install, a few minutes once)"
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" >/dev/null 2>&1 || true
fi
if [ "$(cargo-deb --version 2>/dev/null)" = "cargo-deb $CARGO_DEB_VERSION" ] && have dpkg-deb dpkg; then
  cargo build --quiet --locked --bin calsync
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  # The dev profile reuses the test build; cargo-deb warns that it is meant for releases.
  cargo deb --locked --profile dev --no-build --no-strip --fast -o "$out/" 2>"$out/log" >/dev/null \
    || { cat "$out/log" >&2; fail "cargo deb"; }
  debs=("$out"/calsync_"$VERSION"-1_*.deb)
  deb="${debs[0]}"
  contents="$(dpkg-deb -c "$deb")"
  expect() { # MODE PATH: the package holds PATH with permissions MODE
    echo "$contents" | grep -qE "^$1 [^ ]+ +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" \
      || fail "$deb has no $2 with mode $1"
  }
  expect -rwxr-xr-x usr/bin/calsync
  expect -rw-r----- etc/calsync/calsync.toml
  for page in man/*.1; do expect -rw-r--r-- "usr/share/man/man1/${page#man/}.gz"; done
  for unit in systemd/*; do expect -rw-r--r-- "usr/lib/systemd/system/${unit#systemd/}"; done
  expect -rw-r--r-- usr/share/bash-completion/completions/calsync
  expect -rw-r--r-- usr/share/zsh/vendor-completions/_calsync
  expect -rw-r--r-- usr/share/fish/vendor_completions.d/calsync.fish
  dpkg-deb -e "$deb" "$out/control"
  [ "$(cat "$out/control/conffiles")" = "/etc/calsync/calsync.toml" ] \
    || fail "conffiles is not exactly /etc/calsync/calsync.toml: $(cat "$out/control/conffiles")"
  grep -q 'audit.key' "$out/control/postinst" || fail "postinst is not ours"
  grep -q 'deb-systemd-helper update-state calsync.timer' "$out/control/postinst" \
    || fail "postinst lacks the systemd snippet for calsync.timer"
  # enable = false, start = false: a unit is enabled again only when it was before (an
  # upgrade), and nothing is started on install; the configuration needs editing first.
  awk '/was-enabled/ { guarded = 3 }
       /deb-systemd-helper enable/ && guarded <= 0 { bad = 1 }
       /_dh_action=start|deb-systemd-invoke start/ { bad = 1 }
       { guarded-- }
       END { exit bad }' "$out/control/postinst" \
    || fail "postinst enables or starts a unit on install"
  for script in postinst postrm prerm; do
    sh -n "$out/control/$script" || fail "$script does not parse"
  done
  if have lintian lintian; then
    # The dev binary is not stripped (cargo deb strips a release build); every other tag
    # fails the check. The package's own overrides (packaging/deb/lintian-overrides) apply.
    lint="$(lintian --tag-display-limit 0 --suppress-tags unstripped-binary-or-object "$deb" 2>&1 \
      | grep -v 'running with root privileges' || true)"
    [ -z "$lint" ] || { echo "$lint" >&2; fail "lintian"; }
    say "lintian: clean"
  else
    skipped "lintian: not installed and cannot be installed here"
  fi
  pages=(man/*.1) units=(systemd/*)
  say "deb: $(basename "$deb") holds the binary, ${#pages[@]} man pages, ${#units[@]} units, 3 completions, the 0640 conffile"
else
  skipped "deb: cargo-deb $CARGO_DEB_VERSION or dpkg-deb cannot be installed here"
fi

# ---- RPM spec
if have rpmspec rpm && have rpmlint rpmlint; then
  rpmspec -P packaging/rpm/calsync.spec >/dev/null || fail "rpmspec cannot parse calsync.spec"
  lint="$(rpmlint packaging/rpm/calsync.spec 2>&1)" || { echo "$lint" >&2; fail "rpmlint"; }
  say "rpm: calsync.spec parses; rpmlint: $(echo "$lint" | tail -1)"
else
  skipped "rpm: rpmspec/rpmlint cannot be installed here"
fi

# ---- Arch PKGBUILD
if have makepkg makepkg pacman-package-manager; then
  work="$(mktemp -d)"
  cp packaging/arch/PKGBUILD packaging/arch/calsync.install "$work/"
  chown -R nobody "$work"
  info="$(cd "$work" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env HOME="$work" makepkg --printsrcinfo 2>&1)" || { echo "$info" >&2; rm -rf "$work"; fail "makepkg"; }
  rm -rf "$work"
  echo "$info" | grep -q "pkgver = $VERSION" || fail "PKGBUILD pkgver is not $VERSION"
  say "arch: PKGBUILD passes makepkg's checks (makepkg --printsrcinfo)"
else
  skipped "arch: makepkg cannot be installed here"
fi
