#!/usr/bin/env bash
# Every test of mailcanary, on a fresh Debian machine: installs what the
# tests need (Postfix, Dovecot, promtool), starts the local mail stack in a
# fresh directory, runs lint and the test suite against it, stops the stack.
# Run as root (Postfix starts only as root).
set -euo pipefail
cd "$(dirname "$0")/.."

export MAILSTACK_DIR=${MAILSTACK_DIR:-/tmp/mailcanary-stack-test}
# Prometheus, promtool and Alertmanager for the alerting tests, botocore for
# the SES stand-in's signature checks, docker-compose to validate the compose
# file; HAProxy and postfix-cdb (the table mailcanary writes for Postfix) for
# the failover tests; GNU time and check_email_delivery for
# the benchmark's smoke run; kubectl (Debian's kubernetes-client, unless a
# kubectl is installed already: both own /usr/bin/kubectl) and python3-venv
# for the Kubernetes manifests, systemd's systemd-analyze for the package;
# headless Chromium (and a font) for the status page's browser tests.
# A C compiler and libc headers (ring and the bundled SQLite compile C) and CA
# roots (cargo fetches crates over HTTPS) are what a fresh Debian lacks to build.
command -v cargo >/dev/null || { echo "test.sh: cargo not found: install Rust with rustup, then run this again" >&2; exit 1; }
for c in fmt clippy; do
  cargo "$c" --version >/dev/null 2>&1 || { echo "test.sh: cargo $c not found: run rustup component add rustfmt clippy" >&2; exit 1; }
done
kubectl_package=$(command -v kubectl >/dev/null || echo kubernetes-client)
scripts/mailstack.sh install gcc libc6-dev ca-certificates prometheus prometheus-alertmanager python3-botocore docker-compose haproxy \
  time monitoring-plugins-contrib libmail-imapclient-perl libnet-smtp-tls-perl libnet-smtp-ssl-perl libio-socket-ssl-perl \
  python3-venv systemd chromium fonts-dejavu-core postfix-cdb curl $kubectl_package

# The stack's directory (its mail and logs) is kept only when something
# failed, like the tests' own temporary directories.
trap 'rc=$?; scripts/mailstack.sh down; [ "$rc" -ne 0 ] || rm -rf "$MAILSTACK_DIR"' EXIT
scripts/mailstack.sh up

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# The benchmark, tiny: proves it still runs (docs/performance.md has the real figures).
cargo bench --locked --bench delivery -- --smoke
# The Kubernetes manifests rendered and validated, then the Debian package
# installed here, checked and purged. It packages target/release/mailcanary
# as the benchmark left it: `cargo build --release` would build again (the
# benchmark's build has the dev-dependencies' features), and the package's
# checks need no more than a release binary of this source.
scripts/kubernetes.sh test
scripts/deb.sh test
