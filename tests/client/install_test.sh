#!/usr/bin/env bash
# Installs the picker-client component of the build tree into a temporary
# prefix, builds examples/client against it as an outside project would
# (find_package(picker-client)), and runs the example and the installed
# picker-cli against a real picker-server started with --demo.
set -euo pipefail
: "${PICKER_BUILD_DIR:?}" "${PICKER_SOURCE_DIR:?}" "${PICKER_SERVER:?}"
CMAKE_COMMAND=${CMAKE_COMMAND:-cmake}

work=$(mktemp -d "${TMPDIR:-/tmp}/picker-client-install-XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== install the picker-client component into $work/prefix"
"$CMAKE_COMMAND" --install "$PICKER_BUILD_DIR" --prefix "$work/prefix" --component picker-client
for f in include/picker/client.h include/picker/v1/picker.pb.h include/picker/v1/picker.grpc.pb.h \
         include/picker/v1/admin.grpc.pb.h bin/picker-cli; do
  [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done
# The contract itself, for other languages: the repository's .proto files,
# unchanged, and complete enough for protoc to compile from the prefix alone.
for p in picker admin; do
  cmp -s "$PICKER_SOURCE_DIR/protos/picker/v1/$p.proto" "$work/prefix/include/picker/v1/$p.proto" ||
    fail "not installed, or not the repository's: include/picker/v1/$p.proto"
done
command -v protoc >/dev/null || fail "protoc not found: run scripts/install-deps.sh (Debian protobuf-compiler)"
protoc -I "$work/prefix/include" --descriptor_set_out="$work/picker.pb" \
  picker/v1/picker.proto picker/v1/admin.proto || fail "protoc cannot compile the installed .proto files"
config=$(find "$work/prefix" -name picker-clientConfig.cmake | head -1)
[ -n "$config" ] || fail "picker-clientConfig.cmake not installed"
[ -n "$(find "$work/prefix" -name 'picker-clientTargets*.cmake' | head -1)" ] || fail "export file not installed"
# Nothing from the server may come with the client component.
if find "$work/prefix" -name 'picker-server*' | grep -q .; then fail "picker-server installed with the client"; fi

echo "== configure and build examples/client against the prefix only"
flags=()
if [ -n "${PICKER_SANITIZE:-}" ]; then
  # The library was built with sanitizers: the example must link their runtimes.
  flags+=("-DCMAKE_CXX_FLAGS=-fsanitize=$PICKER_SANITIZE" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$PICKER_SANITIZE")
fi
"$CMAKE_COMMAND" -S "$PICKER_SOURCE_DIR/examples/client" -B "$work/build" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "${flags[@]}" | tee "$work/configure.log"
grep -qx -- "-- picker-client protos: $work/prefix/include/picker/v1" "$work/configure.log" ||
  fail "picker-client_PROTO_DIR does not name the installed protos' include root"
found=$(sed -n 's/^picker-client_DIR:PATH=//p' "$work/build/CMakeCache.txt")
case "$found" in
  "$work/prefix"/*) echo "found picker-client in $found" ;;
  *) fail "find_package(picker-client) found '$found', not the temporary prefix" ;;
esac
"$CMAKE_COMMAND" --build "$work/build" -j2
[ -x "$work/build/picker-client-example" ] || fail "the example was not built"

echo "== run the example and the installed picker-cli against a real server"
"$PICKER_SERVER" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --data-dir "$work/data" --demo 2>"$work/server.log" &
server_pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(sed -n 's/.*listening data=\([^ ]*\) .*/\1/p' "$work/server.log" | head -1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "picker-server exited"; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/server.log" >&2; fail "picker-server did not report its listeners"; }

out=$("$work/build/picker-client-example" "$addr" demo 5) || { echo "$out"; fail "the example failed"; }
echo "$out"
[ "$(grep -c 'RELEASED$' <<<"$out")" -eq 5 ] || fail "expected 5 released requests"
grep -q '^retried request: ' <<<"$out" || fail "no retried request"

out=$("$work/prefix/bin/picker-cli" pick --addr "$addr" --upstream demo --release) \
  || { echo "$out"; fail "the installed picker-cli failed"; }
echo "$out"
grep -q 'state=RELEASED' <<<"$out" || fail "picker-cli did not release"
echo "PASS"
