# Shared helpers of picker's end-to-end shell tests. Source it; it sets up a
# temp dir, an EXIT trap that stops every process started through it, and
# functions to start picker-server on ephemeral 127.0.0.1 ports.
#
# Environment:
#   PICKER_SERVER      path of the picker-server binary (CMake passes it)
#   PICKER_SOURCE_DIR  repository root (for README.md and node_modules/.bin/buf)

set -uo pipefail

E2E_NAME=$(basename "$0" .sh)
PICKER_SOURCE_DIR=${PICKER_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PICKER_SERVER=${PICKER_SERVER:-}
PYTHON=${PICKER_PYTHON:-/usr/bin/python3}

E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/picker-${E2E_NAME}.XXXXXX")
E2E_PIDS=()
E2E_FAILURES=0

e2e_cleanup() {
  local rc=$?
  local pid
  kill -TERM "$E2E_WATCHDOG" 2>/dev/null
  for pid in "${E2E_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  if [ "$rc" -ne 0 ] && [ -f "$E2E_TMP/server.log" ]; then
    echo "---- last lines of picker-server's log ----" >&2
    tail -n 30 "$E2E_TMP/server.log" >&2
  fi
  rm -rf "$E2E_TMP"
  exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'echo "FAIL: $E2E_NAME stopped by SIGTERM (time limit?)" >&2; exit 143' TERM

# Watchdog: the whole test ends (and cleans up) well before ctest's 120 s
# TIMEOUT would kill it without running the EXIT trap.
(
  trap 'kill "${s:-}" 2>/dev/null; exit 0' TERM
  # Its own output to /dev/null, so that a sleep left behind holds no pipe ctest reads.
  sleep "${E2E_TIME_LIMIT:-100}" >/dev/null 2>&1 & s=$!
  wait "$s" && kill -TERM $$ 2>/dev/null
) &
E2E_WATCHDOG=$!

die() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
# check CONDITION-STATUS MESSAGE: records a failure without stopping the test.
fail() { echo "FAIL: $*" >&2; E2E_FAILURES=$((E2E_FAILURES + 1)); }
finish() {
  if [ "$E2E_FAILURES" -ne 0 ]; then
    echo "$E2E_NAME: $E2E_FAILURES check(s) failed" >&2
    exit 1
  fi
  echo "$E2E_NAME: all checks passed"
}

# The tools scripts/install-deps.sh installs. A missing one is a failure, not a skip.
require_server() {
  [ -n "$PICKER_SERVER" ] || die "PICKER_SERVER is not set (path of the picker-server binary; ctest sets it)"
  [ -x "$PICKER_SERVER" ] || die "picker-server not found or not executable at '$PICKER_SERVER' (build the picker-server target)"
}
require_buf() {
  BUF="$PICKER_SOURCE_DIR/node_modules/.bin/buf"
  [ -x "$BUF" ] || die "buf not found at $BUF: run scripts/install-deps.sh (or 'npm ci' in $PICKER_SOURCE_DIR)"
}
require_python() {
  [ -x "$PYTHON" ] || die "$PYTHON not found: run scripts/install-deps.sh"
}
require_tool() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH: run scripts/install-deps.sh (${2:-})"
}

# json_get EXPR: evaluates a Python expression over the JSON document on stdin
# (bound to `d`) and prints the result ('' if the expression fails).
json_get() {
  "$PYTHON" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1], {"d": d})
except Exception as e:
    print("json_get: %s" % e, file=sys.stderr)
    sys.exit(1)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) else v)
' "$1"
}

# free_port: prints a TCP port that was free on 127.0.0.1 a moment ago.
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server [EXTRA FLAGS...]: starts picker-server on ephemeral 127.0.0.1
# ports with a fresh data dir, waits (up to 15 s) for its "listening" line and
# sets DATA_ADDR, ADMIN_ADDR, METRICS_ADDR and SERVER_PID.
start_server() {
  require_server
  mkdir -p "$E2E_TMP/data"
  "$PICKER_SERVER" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 --data-dir "$E2E_TMP/data" "$@" \
    >"$E2E_TMP/server.out" 2>"$E2E_TMP/server.log" &
  SERVER_PID=$!
  E2E_PIDS+=("$SERVER_PID")
  local line=""
  for _ in $(seq 150); do
    line=$(grep -m1 -o 'listening data=[^ ]* admin=[^ ]* metrics=[^ ]*' "$E2E_TMP/server.log" 2>/dev/null)
    [ -n "$line" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "picker-server exited before listening (see its log below)"
    sleep 0.1
  done
  [ -n "$line" ] || die "picker-server printed no 'listening data=... admin=... metrics=...' line within 15 s"
  DATA_ADDR=$(sed -n 's/.*data=\([^ ]*\).*/\1/p' <<<"$line")
  ADMIN_ADDR=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' <<<"$line")
  METRICS_ADDR=$(sed -n 's/.*metrics=\([^ ]*\).*/\1/p' <<<"$line")
  for a in "$DATA_ADDR" "$ADMIN_ADDR" "$METRICS_ADDR"; do
    [[ "$a" =~ ^127\.0\.0\.1:[1-9][0-9]*$ ]] || die "unexpected listening address '$a' in: $line"
  done
  echo "picker-server pid $SERVER_PID: data=$DATA_ADDR admin=$ADMIN_ADDR metrics=$METRICS_ADDR"
}

# stop_server: SIGTERM, and checks the exit code is 0 (within 15 s).
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || { fail "picker-server was no longer running at the end"; return; }
  local i
  for i in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "picker-server still running 15 s after SIGTERM"
    return
  fi
  wait "$SERVER_PID"
  local rc=$?
  if [ "$rc" -eq 0 ]; then pass "picker-server exited 0 on SIGTERM"; else fail "picker-server exited $rc on SIGTERM (expected 0)"; fi
}

# bufc ARGS...: buf curl over plaintext HTTP/2 gRPC, bounded in time.
bufc() {
  timeout 30 "$BUF" curl --protocol grpc --http2-prior-knowledge "$@"
}
