#!/usr/bin/env bash
# buf lint over protos/ with the repository's buf.yaml (STANDARD rules, with
# the waivers the picker.v1 contract needs, each explained there), offline:
# every proxy points at a closed port, so a lint that reached for the network
# would fail. Then a copy of the protos with a message that breaks two
# STANDARD rules must be refused, so that a pass means something.
set -euo pipefail
: "${PICKER_SOURCE_DIR:?PICKER_SOURCE_DIR is not set (the repository root; ctest sets it)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

buf="$PICKER_SOURCE_DIR/node_modules/.bin/buf"
[ -x "$buf" ] || fail "buf not found at $buf: run scripts/install-deps.sh (npm ci installs it)"
work=$(mktemp -d "${TMPDIR:-/tmp}/picker-buf-lint-XXXXXX")
trap 'rm -rf "$work"' EXIT
export BUF_CACHE_DIR="$work/cache"
export HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=
export https_proxy=$HTTPS_PROXY http_proxy=$HTTP_PROXY no_proxy=

echo "== buf $("$buf" --version) lint (offline)"
(cd "$PICKER_SOURCE_DIR" && "$buf" lint) || fail "buf lint found problems in protos/ (above)"

echo "== a copy with a badly named message and field must fail"
mkdir -p "$work/repo"
cp "$PICKER_SOURCE_DIR/buf.yaml" "$work/repo/"
cp -r "$PICKER_SOURCE_DIR/protos" "$work/repo/"
printf '\n// Breaks MESSAGE_PASCAL_CASE and FIELD_LOWER_SNAKE_CASE.\nmessage lint_probe {\n  string BadField = 1;\n}\n' \
  >>"$work/repo/protos/picker/v1/picker.proto"
if out=$(cd "$work/repo" && "$buf" lint 2>&1); then
  fail "buf lint accepted a message named lint_probe with a field named BadField"
fi
echo "$out"
grep -q 'lint_probe' <<<"$out" || fail "buf lint failed, but not on the probe message"
grep -q 'BadField' <<<"$out" || fail "buf lint failed, but not on the probe field"
echo "PASS"
