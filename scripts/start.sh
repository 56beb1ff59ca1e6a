#!/usr/bin/env bash
# One command from a fresh clone to a running picker: installs what is needed,
# builds (Release), and starts picker-server in the foreground with its
# defaults (data :50051, admin 127.0.0.1:50052, metrics :9464, store in
# ./picker-data) and a demo upstream named "demo". Extra arguments go to
# picker-server, e.g. scripts/start.sh --listen 127.0.0.1:50051
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPICKER_BUILD_TESTS=OFF -DPICKER_BUILD_BENCH=OFF
cmake --build build -j2 --target picker-server
exec build/picker-server --demo "$@"
