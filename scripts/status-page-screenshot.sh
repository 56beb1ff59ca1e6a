#!/usr/bin/env bash
# Makes docs/status-page.png, the status page's picture in README.md, the way
# the browser test sees the page: it runs tests/e2e/status_page_test.py (a
# real server with upstreams in every state, headless Chromium) and keeps its
# wide screenshot. Needs a built picker-server (build/ by default) and
# chromium, chromium-driver and python3-selenium (scripts/install-deps.sh
# --tests installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PICKER_SERVER=${PICKER_SERVER:-$PWD/build/picker-server}
export PICKER_SOURCE_DIR=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 tests/e2e/status_page_test.py --screenshot "$out/status-page.png"
mkdir -p docs
cp "$out/status-page.png" docs/status-page.png
echo "wrote docs/status-page.png"
