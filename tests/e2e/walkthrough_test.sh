#!/usr/bin/env bash
# End-to-end test of README.md's walkthrough: extracts the `buf curl`,
# `curl`, `picker-cli` (and `printf`) commands of the section between <!-- walkthrough:begin --> and
# <!-- walkthrough:end --> (```sh blocks, backslash continuations joined),
# points them at a real picker-server on ephemeral 127.0.0.1 ports, runs them
# in order and checks what each one answers. So the commands users copy are
# the commands tested.
#
# Needs PICKER_SERVER, PICKER_CLI (binaries) and PICKER_SOURCE_DIR (repository
# root); ctest passes them. Tools: node_modules/.bin/buf, curl, /usr/bin/python3.

source "$(dirname "$0")/lib.sh"

require_server
require_buf
require_python
require_tool curl "Debian package curl"

README="$PICKER_SOURCE_DIR/README.md"
[ -f "$README" ] || die "README not found at $README"

# ---- Extract the walkthrough's commands --------------------------------------
mapfile -d '' CMDS < <("$PYTHON" - "$README" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"<!-- walkthrough:begin -->(.*?)<!-- walkthrough:end -->", text, re.S)
if not m:
    sys.exit("walkthrough markers not found in README.md")
in_sh = False
cmd = None
for line in m.group(1).splitlines():
    s = line.strip()
    if s.startswith("```"):
        in_sh = (not in_sh) and s[3:].strip() in ("sh", "bash", "shell", "console")
        cmd = None
        continue
    if not in_sh:
        continue
    if cmd is not None:                      # continuation of a command
        cmd += " " + s.rstrip("\\").strip()
    elif s.startswith(("buf curl ", "curl ", "picker-cli ", "printf ")):
        cmd = s.rstrip("\\").strip()
    else:
        continue
    if not s.endswith("\\"):
        sys.stdout.write(cmd + "\0")
        cmd = None
EOF
)
echo "extracted ${#CMDS[@]} commands from the README walkthrough"
[ "${#CMDS[@]}" -ge 10 ] || die "expected at least 10 buf curl/curl commands in the walkthrough, found ${#CMDS[@]}"

start_server --kong-admin-listen 127.0.0.1:0
KONG_ADDR=$(grep -m1 -o 'Kong Admin API listening on [^ ]*' "$E2E_TMP/server.log" | awk '{print $NF}')
[[ "$KONG_ADDR" =~ ^127\.0\.0\.1:[1-9][0-9]*$ ]] || die "no Kong Admin API address in the log"

# `buf` in the README's commands resolves to the repository's pinned copy,
# `picker-cli` to the one built with the server.
mkdir -p "$E2E_TMP/bin"
ln -s "$BUF" "$E2E_TMP/bin/buf"
[ -x "${PICKER_CLI:-}" ] || die "PICKER_CLI is not set to the picker-cli binary"
ln -s "$PICKER_CLI" "$E2E_TMP/bin/picker-cli"
export PATH="$E2E_TMP/bin:$PATH"

# run_cmd CMD: rewrites the README's addresses to the test server's, runs the
# command with bash; sets OUT, ERR and RC.
LAST_LEASE=""
run_cmd() {
  local c=$1
  c=${c//127.0.0.1:50051/$DATA_ADDR}
  c=${c//127.0.0.1:50052/$ADMIN_ADDR}
  c=${c//127.0.0.1:9464/$METRICS_ADDR}
  c=${c//127.0.0.1:8001/$KONG_ADDR}
  c=${c//LEASE_ID/$LAST_LEASE}
  # picker-cli's defaults are the README's ports: point it at the test's.
  [[ "$c" == picker-cli* ]] && c="$c --admin-addr $ADMIN_ADDR --addr $DATA_ADDR"
  echo "+ $c"
  OUT=$(cd "$E2E_TMP" && timeout -k 5 30 bash -o pipefail -c "$c" 2>"$E2E_TMP/stderr")
  RC=$?
  ERR=$(cat "$E2E_TMP/stderr")
}
# data_of CMD: the JSON document of --data '...' in a command.
data_of() { sed -n "s/.*--data '\([^']*\)'.*/\1/p" <<<"$1"; }

declare -A SEEN=()
PICKS=0        # successful picks so far
ACTIVE=0       # leases held
FIRST_LEASE=""
T1="10.0.0.1:8080"
T2="10.0.0.2:8080"

for cmd in "${CMDS[@]}"; do
  case "$cmd" in
  *--list-methods*127.0.0.1:50052*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "list-methods on the admin port: exit $RC: $ERR"; continue; }
    for m in picker.v1.Admin/CreateUpstream picker.v1.Admin/GetUpstream picker.v1.Admin/ListUpstreams \
             picker.v1.Admin/UpdateUpstream picker.v1.Admin/DeleteUpstream picker.v1.Admin/PutTarget \
             picker.v1.Admin/DeleteTarget picker.v1.Admin/ReplaceTargets picker.v1.Admin/ListTargets \
             picker.v1.Admin/SetTargetHealth picker.v1.Admin/GetUpstreamHealth grpc.health.v1.Health/Check; do
      grep -qx "$m" <<<"$OUT" || fail "list-methods on the admin port does not list $m; got: $(tr '\n' ' ' <<<"$OUT")"
    done
    SEEN[list_admin]=1; pass "admin port lists picker.v1.Admin's methods and grpc.health.v1.Health"
    ;;
  *--list-methods*127.0.0.1:50051*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "list-methods on the data port: exit $RC: $ERR"; continue; }
    for m in picker.v1.Picker/Pick picker.v1.Picker/Release picker.v1.Picker/PickStream grpc.health.v1.Health/Check; do
      grep -qx "$m" <<<"$OUT" || fail "list-methods on the data port does not list $m; got: $(tr '\n' ' ' <<<"$OUT")"
    done
    if grep -q '^picker\.v1\.Admin/' <<<"$OUT"; then fail "the data port serves picker.v1.Admin (contract: admin port only)"; fi
    SEEN[list_data]=1; pass "data port lists picker.v1.Picker/Pick and grpc.health.v1.Health/Check"
    ;;
  */picker.v1.Admin/CreateUpstream*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "CreateUpstream: exit $RC: $ERR"; continue; }
    name=$(json_get 'd["name"]' <<<"$OUT")
    [ "$name" = example_upstream ] || fail "CreateUpstream answered name '$name', expected example_upstream: $OUT"
    rr=$(json_get '"roundRobin" in d.get("loadBalancer", {})' <<<"$OUT")
    [ "$rr" = true ] || fail "CreateUpstream's answer has no loadBalancer.roundRobin: $OUT"
    ttl=$(json_get 'd.get("leaseTtl")' <<<"$OUT")
    [ "$ttl" = 60s ] || fail "CreateUpstream's answer: leaseTtl '$ttl', expected the default 60s filled in"
    SEEN[create]=1; pass "CreateUpstream created example_upstream (round robin)"
    # The same command again: ALREADY_EXISTS, which buf curl reports as exit 6*8.
    run_cmd "$cmd"
    if [ "$RC" -eq 48 ]; then pass "duplicate CreateUpstream: buf curl exit 48 (ALREADY_EXISTS)"
    else fail "duplicate CreateUpstream: buf curl exit $RC, expected 48 (ALREADY_EXISTS * 8): $ERR"; fi
    grep -qi already_exists <<<"$ERR" || fail "duplicate CreateUpstream: no already_exists in buf's error: $ERR"
    ;;
  */picker.v1.Admin/PutTarget*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "PutTarget: exit $RC: $ERR"; continue; }
    want=$(data_of "$cmd" | json_get 'd["target"]["address"]')
    got=$(json_get 'd["address"]' <<<"$OUT")
    [ "$got" = "$want" ] || fail "PutTarget answered address '$got', expected '$want'"
    SEEN[put]=$(( ${SEEN[put]:-0} + 1 )); pass "PutTarget $want"
    ;;
  */picker.v1.Admin/ListTargets*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "ListTargets: exit $RC: $ERR"; continue; }
    got=$(json_get '[(t["address"], t.get("weight")) for t in d["targets"]]' <<<"$OUT")
    [ "$got" = "[[\"$T1\", 100], [\"$T2\", 100]]" ] || fail "ListTargets: got $got, expected $T1 and $T2 with weight 100, in that order"
    SEEN[list_targets]=1; pass "ListTargets lists the two targets"
    ;;
  *x-user*/picker.v1.Picker/Pick*|*/picker.v1.Picker/Pick*x-user*)
    # Same user, same target; the README says "again and again".
    first=""; hash0=""
    for i in 1 2 3 4 5; do
      run_cmd "$cmd"
      [ "$RC" -eq 0 ] || { fail "hashed Pick: exit $RC: $ERR"; continue 2; }
      t=$(json_get 'd["target"]' <<<"$OUT"); h=$(json_get 'd.get("hash")' <<<"$OUT")
      PICKS=$((PICKS + 1)); ACTIVE=$((ACTIVE + 1))
      if [ -z "$first" ]; then first=$t; hash0=$h
      else
        [ "$t" = "$first" ] || fail "hashed Pick: the same x-user got $first then $t"
        [ "$h" = "$hash0" ] || fail "hashed Pick: the same x-user gave hash $hash0 then $h"
      fi
    done
    [ "$first" = "$T1" ] || [ "$first" = "$T2" ] || fail "hashed Pick answered '$first', not one of the targets"
    [ "$hash0" != None ] && [ -n "$hash0" ] || fail "hashed Pick's answer carries no hash: $OUT"
    # Other users: both targets get some (40 users; all on one side would be 2^-39 for a fair ring).
    declare -A spread=()
    user=$(sed -n 's/.*"x-user":"\([^"]*\)".*/\1/p' <<<"$cmd")
    for u in $(seq 100 139); do
      out=$(bufc --data "{\"upstream\":\"example_upstream\",\"attributes\":{\"headers\":{\"x-user\":\"$u\"}}}" \
                 "http://$DATA_ADDR/picker.v1.Picker/Pick" 2>&1) || { fail "Pick for user $u failed: $out"; break; }
      spread[$(json_get 'd["target"]' <<<"$out")]=1
      PICKS=$((PICKS + 1)); ACTIVE=$((ACTIVE + 1))
    done
    [ "${#spread[@]}" -eq 2 ] || fail "40 different x-user values all went to ${!spread[*]}"
    SEEN[hash_pick]=1; pass "x-user $user always picks $first; other users spread over both targets"
    ;;
  */picker.v1.Picker/Pick*)
    seq_=()
    for i in 1 2 3 4; do
      run_cmd "$cmd"
      [ "$RC" -eq 0 ] || { fail "Pick: exit $RC: $ERR"; continue 2; }
      seq_+=("$(json_get 'd["target"]' <<<"$OUT")")
      lease=$(json_get 'd["leaseId"]' <<<"$OUT")
      [[ "$lease" =~ ^[1-9][0-9]*$ ]] || fail "Pick: leaseId '$lease' is not a positive integer string"
      [ -n "$FIRST_LEASE" ] || FIRST_LEASE=$lease
      PICKS=$((PICKS + 1)); ACTIVE=$((ACTIVE + 1))
    done
    LAST_LEASE=$FIRST_LEASE
    for i in 0 1 2; do
      [ "${seq_[$i]}" != "${seq_[$((i + 1))]}" ] || fail "round robin picked ${seq_[$i]} twice in a row: ${seq_[*]}"
    done
    for i in 0 1 2 3; do
      [ "${seq_[$i]}" = "$T1" ] || [ "${seq_[$i]}" = "$T2" ] || fail "Pick answered '${seq_[$i]}', not one of the targets"
    done
    SEEN[pick]=1; pass "picks alternate: ${seq_[*]}"
    ;;
  */picker.v1.Picker/Release*)
    [ -n "$LAST_LEASE" ] || { fail "Release comes before any Pick in the walkthrough"; continue; }
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "Release: exit $RC: $ERR"; continue; }
    st=$(json_get 'd.get("state")' <<<"$OUT")
    [ "$st" = RELEASED ] || fail "Release: state '$st', expected RELEASED"
    ACTIVE=$((ACTIVE - 1))
    run_cmd "$cmd"
    st=$(json_get 'd.get("state")' <<<"$OUT")
    [ "$RC" -eq 0 ] && [ "$st" = ALREADY_RELEASED ] || fail "Release again: exit $RC, state '$st', expected ALREADY_RELEASED: $ERR"
    SEEN[release]=1; pass "Release: RELEASED, then ALREADY_RELEASED"
    ;;
  */picker.v1.Admin/GetUpstreamHealth*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "GetUpstreamHealth: exit $RC: $ERR"; continue; }
    got=$(json_get '[d.get("healthyTargets"), d.get("totalTargets"), [(t["address"], t.get("healthy", False)) for t in d["targets"]], sum(int(t.get("activeRequests", 0)) for t in d["targets"])]' <<<"$OUT")
    want="[2, 2, [[\"$T1\", true], [\"$T2\", true]], $ACTIVE]"
    [ "$got" = "$want" ] || fail "GetUpstreamHealth: got $got, expected $want ([healthy, total, targets, active requests])"
    SEEN[health]=1; pass "GetUpstreamHealth: 2/2 healthy, $ACTIVE active requests"
    ;;
  */picker.v1.Admin/UpdateUpstream*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "UpdateUpstream: exit $RC: $ERR"; continue; }
    got=$(json_get 'd["loadBalancer"]["ringHash"]["hashPolicies"][0]["header"]["name"]' <<<"$OUT")
    [ "$got" = x-user ] || fail "UpdateUpstream's answer has no ringHash header policy x-user: $OUT"
    SEEN[update]=1; pass "UpdateUpstream switched to ring_hash on x-user"
    ;;
  curl*/metrics*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "metrics: exit $RC: $ERR"; continue; }
    sum=$(awk '/^picker_picks_total\{.*upstream="example_upstream"/ { s += $NF } END { print s + 0 }' <<<"$OUT")
    [ "$sum" = "$PICKS" ] || fail "metrics: picker_picks_total{upstream=\"example_upstream\"} sums to $sum, expected $PICKS; got: $OUT"
    SEEN[metrics]=1; pass "metrics: picker_picks_total for example_upstream = $PICKS"
    ;;
  curl*:8001/upstreams/*/targets*)
    run_cmd "$cmd"
    want=$(sed -n "s/.*target=\([^ ]*\).*/\1/p" <<<"$cmd")
    [ "$RC" -eq 0 ] && [ "$(json_get 'd["target"]' <<<"$OUT")" = "$want" ] ||
      { fail "Kong target POST: exit $RC: $OUT $ERR"; continue; }
    SEEN[kong_target]=$(( ${SEEN[kong_target]:-0} + 1 )); pass "Kong's Admin API created target $want"
    ;;
  curl*:8001/upstreams*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] && [ "$(json_get 'd["algorithm"]' <<<"$OUT")" = round-robin ] ||
      { fail "Kong upstream POST: exit $RC: $OUT $ERR"; continue; }
    SEEN[kong_upstream]=1; pass "Kong's Admin API created kong_upstream (round-robin)"
    ;;
  picker-cli\ pick\ kong_upstream*)
    run_cmd "$cmd"
    mapfile -t seq_ < <(sed -n 's/.*target=\([^ ]*\).*/\1/p' <<<"$OUT")
    [ "$RC" -eq 0 ] && [ "${#seq_[@]}" -eq 4 ] && [ "${seq_[0]}" != "${seq_[1]}" ] &&
      [ "${seq_[0]}" = "${seq_[2]}" ] && [ "${seq_[1]}" = "${seq_[3]}" ] ||
      { fail "picks of kong_upstream do not alternate: exit $RC: $OUT $ERR"; continue; }
    SEEN[kong_pick]=1; pass "picks of the Kong-made upstream alternate: ${seq_[*]}"
    ;;
  picker-cli\ dump*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] && grep -q '^upstreams:' "$E2E_TMP/picker.yaml" || { fail "picker-cli dump: exit $RC: $ERR"; continue; }
    SEEN[dump]=1; pass "picker-cli dump wrote picker.yaml"
    ;;
  picker-cli\ diff*)
    run_cmd "$cmd"
    [ "$RC" -eq 1 ] || fail "picker-cli diff: exit $RC (1: there are changes): $OUT $ERR"
    grep -qF "+ target 10.0.0.3:8080 weight 100" <<<"$OUT" || fail "picker-cli diff does not add 10.0.0.3:8080: $OUT"
    # The README's shares of hash space are exact: they must be what diff says.
    while IFS= read -r line; do
      grep -qF -- "$(sed 's/^ *//' <<<"$line")" <<<"$OUT" || fail "picker-cli diff does not say '$line' as the README does: $OUT"
    done < <(sed -n '/walkthrough:begin/,/walkthrough:end/p' "$README" | grep -E 'hash space that changes owner|^      10\.0\.0\.[0-9:]+ -> |PICKS NOW|^    10\.0\.0\.[0-9:]+ +[-0-9]')
    SEEN[diff]=1; pass "picker-cli diff previews the moved hash space as the README shows"
    ;;
  picker-cli\ apply*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] && grep -qF "replaced the targets of example_upstream (3 targets)" <<<"$OUT" || fail "picker-cli apply: exit $RC: $OUT $ERR"
    SEEN[apply]=1; pass "picker-cli apply added the third target"
    ;;
  picker-cli\ explain*)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || { fail "picker-cli explain: exit $RC: $ERR"; continue; }
    want=$(sed -n '/walkthrough:begin/,/walkthrough:end/p' "$README" | grep -E '^  chosen: ' | head -1)
    grep -qF -- "$want" <<<"$OUT" || fail "picker-cli explain says '$(grep chosen <<<"$OUT")', the README '$want'"
    # The next pick goes where explain said.
    target=$(sed -n 's/^  chosen: \([^ ]*\).*/\1/p' <<<"$OUT")
    out=$(bufc --data '{"upstream":"example_upstream","attributes":{"headers":{"x-user":"42"}}}' \
               "http://$DATA_ADDR/picker.v1.Picker/Pick" 2>&1)
    [ "$(json_get 'd["target"]' <<<"$out")" = "$target" ] || fail "explain chose $target, the pick went to: $out"
    SEEN[explain]=1; pass "picker-cli explain names $target, and the pick goes there"
    ;;
  *)
    run_cmd "$cmd"
    [ "$RC" -eq 0 ] || fail "exit $RC: $ERR"
    ;;
  esac
done

for step in list_admin list_data create put list_targets pick release health metrics update hash_pick dump diff apply explain kong_upstream kong_target kong_pick; do
  [ -n "${SEEN[$step]:-}" ] || fail "the walkthrough has no (working) '$step' step"
done
[ "${SEEN[put]:-0}" -eq 2 ] || fail "expected two PutTarget commands, found ${SEEN[put]:-0}"

stop_server
finish
