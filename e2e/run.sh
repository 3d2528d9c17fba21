#!/usr/bin/env bash
# Browser tests for Portcullis: user flows in headless Chromium (Debian's
# package, driven by playwright-core), axe accessibility checks and
# screenshots of every page at desktop and phone widths.
#
#   bash e2e/run.sh
#
# Installs Chromium with apt-get when /usr/bin/chromium is missing, installs
# the locked npm packages, builds target/debug/portcullis once, runs the
# tests (each test file starts its own server on a free port with a fresh
# data directory), and prints the axe summary and the screenshots folder.
set -euo pipefail
cd "$(dirname "$0")"
E2E="$(pwd)"
ROOT="$(cd .. && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

echo "== npm ci"
npm ci --no-audit --no-fund

echo "== cargo build"
(cd "$ROOT" && cargo build --bin portcullis)

echo "== browser tests"
rm -rf "$E2E/artifacts"
mkdir -p "$E2E/artifacts/screenshots"
status=0
PORTCULLIS_BIN="$ROOT/target/debug/portcullis" npm test || status=$?

echo "== axe summary"
node summary.mjs || true
echo "Screenshots: $E2E/artifacts/screenshots"
exit "$status"
