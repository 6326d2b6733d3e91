#!/usr/bin/env bash
# The Debian package of mailcanary, made with dpkg-deb from a release build.
#
#   scripts/deb.sh build   packages the release binary, the systemd unit
#                          (deploy/systemd/) and the example config and secrets
#                          file (deploy/debian/) into
#                          target/debian/mailcanary_VERSION_ARCH.deb
#   scripts/deb.sh test    builds it, installs it on this machine with apt,
#                          checks the installed unit (systemd-analyze verify,
#                          and security: fails above EXPOSURE_MAX), validates
#                          the installed example config as the mailcanary
#                          user, purges, and checks nothing is left. Root only.
#
# The binary is target/release/mailcanary (CARGO_TARGET_DIR honoured):
# run `cargo build --release --locked` first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The unit's systemd-analyze exposure score (0 = fully sandboxed, 10 = not at
# all) must stay at or below this. It scored 1.1 with systemd 252 (README:
# Deploying). A sandbox option dropped from the unit shows here.
EXPOSURE_MAX=1.5

TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/mailcanary
UNIT=/lib/systemd/system/mailcanary.service

die() { echo "deb.sh: $*" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

version() { sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1; }

# Depends for the binary's shared libraries: glibc at the newest symbol
# version it uses, and libgcc's unwinder. Anything else is a new dependency
# this script must learn about.
depends() {
  local lib glibc
  for lib in $(objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'); do
    case "$lib" in
      libc.so.6 | libm.so.6 | ld-linux-*.so.2) ;;
      libgcc_s.so.1) ;;
      *) die "the binary needs $lib: add its package to depends() in scripts/deb.sh" ;;
    esac
  done
  glibc=$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n1)
  echo "libc6 (>= $glibc), libgcc-s1, adduser"
}

build() {
  local version arch root deb
  [ -x "$BIN" ] || die "$BIN not found: run cargo build --release --locked first"
  version=$(version)
  arch=$(dpkg --print-architecture)
  root=$TMP/root
  install -D -m 0755 "$BIN" "$root/usr/bin/mailcanary"
  strip --strip-unneeded "$root/usr/bin/mailcanary"
  install -D -m 0644 deploy/systemd/mailcanary.service "$root$UNIT"
  install -D -m 0644 deploy/debian/probes.yaml "$root/etc/mailcanary/probes.yaml"
  install -D -m 0600 deploy/debian/default "$root/etc/default/mailcanary"
  install -D -m 0644 README.md "$root/usr/share/doc/mailcanary/README.md"
  install -d "$root/DEBIAN"
  install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
  printf '%s\n' /etc/mailcanary/probes.yaml /etc/default/mailcanary >"$root/DEBIAN/conffiles"
  cat >"$root/DEBIAN/control" <<EOF
Package: mailcanary
Version: $version
Architecture: $arch
Maintainer: mailcanary developers <mailcanary@example.com>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $(depends "$root/usr/bin/mailcanary")
Recommends: ca-certificates
Section: net
Priority: optional
Description: email delivery health monitor
 mailcanary sends signed canary emails through each configured sending
 provider (SMTP relays, AWS SES, SendGrid, Mailgun, Postmark, Resend),
 watches IMAP inboxes for their arrival, and exports what happened as
 Prometheus metrics: delivered, delivered to spam, late or lost, and how
 long each leg took.
EOF
  deb=$TARGET/debian/mailcanary_${version}_${arch}.deb
  mkdir -p "$TARGET/debian"
  dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
  echo "deb.sh: built $deb ($(du -k "$deb" | cut -f1) KiB; installed $(grep Installed-Size "$root/DEBIAN/control" | cut -d' ' -f2) KiB)"
}

# Nothing of the package left: files, user, group, state, dpkg's record.
assert_clean() {
  local p left=()
  for p in /usr/bin/mailcanary "$UNIT" /etc/mailcanary /etc/default/mailcanary /var/lib/mailcanary \
    /usr/share/doc/mailcanary /etc/systemd/system/multi-user.target.wants/mailcanary.service; do
    [ ! -e "$p" ] || left+=("$p")
  done
  ! getent passwd mailcanary >/dev/null || left+=("user mailcanary")
  ! getent group mailcanary >/dev/null || left+=("group mailcanary")
  ! dpkg-query -W -f='${db:Status-Status}' mailcanary 2>/dev/null | grep -qv '^not-installed$' ||
    left+=("dpkg's record of mailcanary")
  [ ${#left[@]} -eq 0 ] || die "$1 left: ${left[*]}"
}

test_package() {
  local deb out score
  [ "$(id -u)" = 0 ] || die "test installs a package: run it as root"
  command -v systemd-analyze >/dev/null || die "systemd-analyze not found: install Debian's systemd (scripts/test.sh does)"
  assert_clean "this machine before the test (a mailcanary installed by hand?)"
  build
  deb=$(realpath "$TARGET/debian/mailcanary_$(version)_$(dpkg --print-architecture).deb")

  trap 'dpkg --purge mailcanary >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$TMP/apt.log" 2>&1 ||
    { cat "$TMP/apt.log" >&2; die "apt-get install $deb failed"; }

  getent passwd mailcanary | grep -q ':/var/lib/mailcanary:/usr/sbin/nologin$' ||
    die "postinst made no system user mailcanary with home /var/lib/mailcanary and no shell"
  [ "$(stat -c %a:%U /etc/default/mailcanary)" = 600:root ] || die "/etc/default/mailcanary must be root's alone (0600)"
  [ "$(dpkg-query -W -f='${Conffiles}' mailcanary | awk 'NF { print $1 }' | sort | tr '\n' ' ')" = \
    "/etc/default/mailcanary /etc/mailcanary/probes.yaml " ] || die "the config and secrets file must be conffiles"

  out=$(systemd-analyze verify "$UNIT" 2>&1) || { echo "$out" >&2; die "systemd-analyze verify $UNIT failed"; }
  if echo "$out" | grep -q mailcanary; then echo "$out" >&2; die "systemd-analyze verify warns about $UNIT"; fi
  out=$(systemd-analyze security --offline=true --no-pager "$UNIT" 2>&1) ||
    { echo "$out" >&2; die "systemd-analyze security $UNIT failed"; }
  score=$(echo "$out" | sed -n 's/^→ Overall exposure level for mailcanary.service: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || { echo "$out" >&2; die "no exposure level in systemd-analyze security's output"; }
  awk -v s="$score" -v max="$EXPOSURE_MAX" 'BEGIN { exit !(s <= max) }' ||
    { echo "$out" >&2; die "exposure level $score is above $EXPOSURE_MAX: the unit lost some of its sandbox"; }
  echo "deb.sh: $UNIT verifies; exposure level $score (at most $EXPOSURE_MAX)"

  # As the service would run it: the secrets file's variables, the
  # mailcanary user, the installed example config.
  # shellcheck source=/dev/null
  out=$(set -a && . /etc/default/mailcanary && set +a &&
    runuser -u mailcanary -- /usr/bin/mailcanary validate --config /etc/mailcanary/probes.yaml 2>&1) ||
    { echo "$out" >&2; die "the installed example config does not validate as the mailcanary user"; }
  echo "deb.sh: $out"

  # What the running service leaves behind (StateDirectory=, the ledger),
  # for purge to remove.
  install -d -o mailcanary -g mailcanary -m 0700 /var/lib/mailcanary
  runuser -u mailcanary -- touch /var/lib/mailcanary/ledger.sqlite

  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q mailcanary >"$TMP/apt.log" 2>&1 ||
    { cat "$TMP/apt.log" >&2; die "apt-get purge mailcanary failed"; }
  assert_clean "purge"
  echo "deb.sh: installed, checked and purged $deb; nothing left"
}

case "${1:-}" in
  build) build ;;
  test) test_package ;;
  *) echo "usage: $0 build | test" >&2; exit 2 ;;
esac
