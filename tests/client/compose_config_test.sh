#!/usr/bin/env bash
# Validates docker-compose.yml with Debian's docker-compose (1.29; no Docker
# engine needed for `config`): no obsolete `version:` key, ports published on
# 127.0.0.1 unless PICKER_BIND says otherwise (the admin port always), and
# docker/prometheus.yml with promtool.
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

# The obsolete top-level `version:` key is gone (Compose v2 warns about it).
if grep -q '^version:' "$compose"; then fail "docker-compose.yml still has a top-level version: key"; fi

# published FILE: "service host_ip:port" for every published port, as
# docker-compose resolves them (PICKER_BIND from the environment).
published() {
  docker-compose -f "$1" config | /usr/bin/python3 -c '
import sys, yaml
for name, service in sorted(yaml.safe_load(sys.stdin)["services"].items()):
    for port in service.get("ports", []):
        parts = str(port).split("/")[0].split(":")
        print(name, (parts[0] if len(parts) == 3 else "0.0.0.0") + ":" + parts[-2])
'
}
# loopback_only FILE: every published port is on 127.0.0.1.
loopback_only() {
  local ports
  ports=$(published "$1") || return 1
  [ -n "$ports" ] && ! grep -qv ' 127\.0\.0\.1:' <<<"$ports"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/picker-compose-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== ports: 127.0.0.1 unless PICKER_BIND says otherwise"
( unset PICKER_BIND; loopback_only "$compose" ) ||
  fail "without PICKER_BIND, some port is not published on 127.0.0.1: $(unset PICKER_BIND; published "$compose" | tr '\n' ' ')"
wide=$(PICKER_BIND=0.0.0.0 published "$compose" | sort | tr '\n' ' ')
echo "PICKER_BIND=0.0.0.0: $wide"
for want in "picker 0.0.0.0:50051" "picker 127.0.0.1:50052" "picker 0.0.0.0:9464" "prometheus 0.0.0.0:9090"; do
  grep -q "$want" <<<"$wide" || fail "with PICKER_BIND=0.0.0.0, expected '$want' in: $wide"
done
# The check can fail: a port published on every interface must be caught.
sed 's/"${PICKER_BIND:-127.0.0.1}:9464:9464"/"9464:9464"/' "$compose" >"$work/open.yml"
grep -q '"9464:9464"' "$work/open.yml" || fail "could not make the copy with an open port"
if ( unset PICKER_BIND; loopback_only "$work/open.yml" ); then
  fail "the loopback check accepted a port published on every interface: it proves nothing"
fi

# The check can fail: a broken copy must be rejected.
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
# The replicas' compose file: etcd, three replicas, Prometheus scraping all.
replicas="$PICKER_SOURCE_DIR/docker-compose.replicas.yml"
echo "== docker-compose -f docker-compose.replicas.yml config -q"
docker-compose -f "$replicas" config -q || fail "docker-compose.replicas.yml does not validate"
services=$(docker-compose -f "$replicas" config --services | sort | tr '\n' ' ')
for s in etcd picker-1 picker-2 picker-3 prometheus; do
  grep -qw -- "$s" <<<"$services" || fail "service $s missing from docker-compose.replicas.yml"
done
( unset PICKER_BIND; loopback_only "$replicas" ) ||
  fail "docker-compose.replicas.yml publishes a port beyond 127.0.0.1 by default"
promtool check config "$PICKER_SOURCE_DIR/docker/prometheus-replicas.yml" ||
  fail "docker/prometheus-replicas.yml is invalid"
# Read once: `docker-compose config | grep -q` fails under pipefail when
# grep exits before docker-compose has written everything (SIGPIPE).
resolved=$(docker-compose -f "$replicas" config)
for s in picker-1 picker-2 picker-3; do
  grep -q "$s:9464" "$PICKER_SOURCE_DIR/docker/prometheus-replicas.yml" ||
    fail "docker/prometheus-replicas.yml does not scrape $s:9464"
  # Every replica shares the one etcd and says where peers reach it.
  grep -q -- "--advertise-address=$s:50051" <<<"$resolved" ||
    fail "$s does not advertise its address"
done
echo "PASS"
