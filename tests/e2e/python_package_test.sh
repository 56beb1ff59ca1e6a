#!/usr/bin/env bash
# The Python client (client/python, package picker-client) installed exactly
# as client/python/README.md documents it, into a fresh venv that sees
# Debian's grpcio and protobuf, then its pytest suite against the real
# picker-server (each test starts its own server on 127.0.0.1 free ports).
#
# Needs PICKER_SERVER and PICKER_SOURCE_DIR (ctest passes both). Tools:
# /usr/bin/python3 with python3-venv, setuptools, wheel, build and pytest;
# protoc and grpc_python_plugin; openssl (scripts/install-deps.sh).

source "$(dirname "$0")/lib.sh"

require_server
require_python
require_tool protoc "Debian package protobuf-compiler"
require_tool grpc_python_plugin "Debian package protobuf-compiler-grpc"
"$PYTHON" -c 'import pytest, build, setuptools, wheel' 2>/dev/null ||
  die "$PYTHON cannot import pytest, build, setuptools and wheel: run scripts/install-deps.sh (Debian python3-pytest, python3-build, python3-setuptools, python3-wheel)"

venv="$E2E_TMP/venv"
echo "== $PYTHON -m venv --system-site-packages $venv"
"$PYTHON" -m venv --system-site-packages "$venv" ||
  die "cannot make a venv: run scripts/install-deps.sh (Debian python3-venv)"
echo "== $venv/bin/pip install --no-build-isolation --no-index ./client/python"
(cd "$PICKER_SOURCE_DIR" && "$venv/bin/pip" install --no-build-isolation --no-index ./client/python) ||
  die "pip could not install ./client/python"

echo "== pytest client/python/tests"
# From the temp dir, so that nothing but the installed package is imported,
# and without writing caches into the source tree.
cd "$E2E_TMP" && PYTHONDONTWRITEBYTECODE=1 PICKER_SERVER="$PICKER_SERVER" \
  "$venv/bin/python" -m pytest -p no:cacheprovider -v "$PICKER_SOURCE_DIR/client/python/tests" ||
  die "the Python client's tests failed (above)"
finish
