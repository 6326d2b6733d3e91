#!/usr/bin/env bash
# The demo: a real Postfix + Dovecot on loopback, one canary checked by hand,
# then mailcanary running on the shipped probes.yaml with /metrics on
# http://127.0.0.1:9925/metrics. Ctrl-C stops everything. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

export MAILSTACK_DIR=${MAILSTACK_DIR:-/tmp/mailcanary-stack}
command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install Rust with rustup, then run this again" >&2; exit 1; }
# The mail stack's packages, plus what a fresh Debian lacks to build: a C
# compiler and libc headers (ring and the bundled SQLite compile C), CA roots
# (cargo fetches crates over HTTPS), curl for the commands printed below.
scripts/mailstack.sh install gcc libc6-dev ca-certificates curl
echo "demo.sh: building mailcanary (release; a first build takes minutes)"
cargo build --release --locked
scripts/mailstack.sh up
trap 'scripts/mailstack.sh down' EXIT
set -a
# shellcheck disable=SC1091
. "$MAILSTACK_DIR/env"
set +a

echo
echo "== one canary, followed live: mailcanary check --probe relay-to-local"
./target/release/mailcanary check --config probes.yaml --probe relay-to-local || true
echo
echo "== mailcanary run: canaries every 30 s on 5 routes (one into a mailbox that bounces). In another terminal:"
echo "     curl -s http://127.0.0.1:9925/metrics | grep -E 'canaries_(sent|delivered|bounced)_total|latency_seconds_(sum|count)'"
echo "     curl -s http://127.0.0.1:9925/api/v1/status"
echo
./target/release/mailcanary run --config probes.yaml
