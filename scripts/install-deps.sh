#!/usr/bin/env bash
# Installs everything picker needs on a fresh Debian 12 machine: the build
# toolchain and libraries, plus the third-party tools the end-to-end tests and
# the README's walkthrough use (Prometheus, Python grpcio, buf, etcd). With
# --tests (scripts/test.sh) it adds what only the test command needs: the
# browser for the status page's test and clang for the fuzz stage. Safe to
# run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  cmake g++ pkg-config make
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev prometheus-cpp-dev libxxhash-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-grpcio python3-protobuf curl ca-certificates
  libcurl4-openssl-dev
  golang-etcd-server-dev golang-github-gogo-protobuf-dev golang-github-gogo-googleapis-dev
)
# The end-to-end tests drive the real third-party tools. The Python client
# (client/python) is installed into a venv that sees Debian's grpcio and
# protobuf (python3-venv), built with setuptools and wheel (python3-build for
# its sdist) without any package index, and tested with pytest; its TLS tests
# make certificates with openssl. The tests of deploy/ read YAML (python3-yaml).
APT_E2E_PACKAGES=(prometheus docker-compose etcd-server etcd-client
  python3-venv python3-setuptools python3-wheel python3-pip python3-build python3-pytest openssl
  python3-yaml)
# The status page's browser test drives Debian's headless Chromium through
# chromedriver with Selenium: for the test command only.
APT_BROWSER_PACKAGES=(chromium chromium-driver python3-selenium)
# The fuzz stage of scripts/test.sh: clang with its libFuzzer and sanitizer
# runtimes (g++ brings the ThreadSanitizer runtime itself). Test-only, like
# the end-to-end tools, so the container image does not install them.
APT_FUZZ_PACKAGES=(clang libclang-rt-14-dev)

wanted=("${APT_PACKAGES[@]}" "${APT_E2E_PACKAGES[@]}")
if [ "${1:-}" = "--tests" ]; then
  wanted+=("${APT_BROWSER_PACKAGES[@]}" "${APT_FUZZ_PACKAGES[@]}")
elif [ -n "${1:-}" ]; then
  echo "install-deps: unknown argument $1 (--tests adds the test command's own tools)" >&2
  exit 2
fi
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# buf (for `buf curl` in the walkthrough and the end-to-end tests) comes from npm,
# pinned in package.json / package-lock.json and installed into ./node_modules.
if [ ! -x node_modules/.bin/buf ]; then
  if ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "install-deps: done"
