#!/usr/bin/env bash
# Validates docker-compose.yml with Debian's docker-compose (1.29; no Docker
# engine needed for `config`) and docker/prometheus.yml with promtool.
set -euo pipefail
: "${PICKER_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v docker-compose >/dev/null ||
  fail "docker-compose is not installed: run scripts/install-deps.sh (Debian package docker-compose)"
command -v promtool >/dev/null ||
  fail "promtool is not installed: run scripts/install-deps.sh (Debian package prometheus)"

compose="$PICKER_SOURCE_DIR/docker-compose.yml"
echo "== docker-compose $(docker-compose version --short 2>/dev/null) config -q"
docker-compose -f "$compose" config -q || fail "docker-compose.yml does not validate"

services=$(docker-compose -f "$compose" config --services | sort | tr '\n' ' ')
echo "services: $services"
for s in picker prometheus target-1 target-2; do
  grep -qw -- "$s" <<<"$services" || fail "service $s missing from docker-compose.yml"
done

# The check can fail: a broken copy must be rejected.
work=$(mktemp -d "${TMPDIR:-/tmp}/picker-compose-XXXXXX")
trap 'rm -rf "$work"' EXIT
sed 's/^    image: picker:local$/    image: picker:local\n    portz: ["1:1"]/' "$compose" >"$work/broken.yml"
grep -q portz "$work/broken.yml" || fail "could not make the broken copy"
if docker-compose -f "$work/broken.yml" config -q 2>/dev/null; then
  fail "docker-compose accepted a compose file with an unknown key: the validation proves nothing"
fi

echo "== promtool check config docker/prometheus.yml"
promtool check config "$PICKER_SOURCE_DIR/docker/prometheus.yml" || fail "docker/prometheus.yml is invalid"
# Prometheus scrapes the compose service on the port its command listens on.
grep -q "picker:9464" "$PICKER_SOURCE_DIR/docker/prometheus.yml" ||
  fail "docker/prometheus.yml does not scrape picker:9464"
echo "PASS"
