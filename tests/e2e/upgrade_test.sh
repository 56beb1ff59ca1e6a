#!/usr/bin/env bash
# A data directory written by picker-server 0.1.0 (tests/fixtures) is served
# by this build exactly as that release served it: the answers of
# ListUpstreams, ListTargets and GetUpstreamHealth, through `buf curl`, equal
# the ones 0.1.0 gave (tests/fixtures/datadir-0.1.0.expected.json). The
# first start moves the directory to the current layout; a second start
# reads that and answers the same again.
source "$(dirname "$0")/lib.sh"
require_buf
require_python

FIXTURE="$PICKER_SOURCE_DIR/tests/fixtures/datadir-0.1.0"
EXPECTED="$FIXTURE.expected.json"
[ -d "$FIXTURE" ] || die "fixture $FIXTURE is missing"
mkdir -p "$E2E_TMP/data"
cp -r "$FIXTURE/." "$E2E_TMP/data/"

# answers OUT: the same calls as the fixture's expected answers, as one JSON.
answers() {
  local admin="http://$ADMIN_ADDR/picker.v1.Admin"
  {
    echo '{"upstreams":'
    bufc --data '{}' "$admin/ListUpstreams" || return 1
    echo ',"targets":{'
    local first=1 u
    for u in lr maglev rand ring rr; do
      [ $first = 1 ] || echo ','
      first=0
      echo "\"$u\":"
      bufc --data "{\"upstream\":\"$u\"}" "$admin/ListTargets" || return 1
    done
    echo '},"health":'
    bufc --data '{"name":"maglev"}' "$admin/GetUpstreamHealth" || return 1
    echo '}'
  } >"$1"
}

same_as_release() {
  "$PYTHON" -c '
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
if got != want:
    print("got:  %s\nwant: %s" % (json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True)))
    sys.exit(1)
' "$1" "$EXPECTED"
}

for start in first second; do
  # start_server keeps an existing data directory.
  start_server
  answers "$E2E_TMP/$start.json" || die "a buf curl call failed"
  if same_as_release "$E2E_TMP/$start.json"; then
    pass "$start start: the answers are those of 0.1.0"
  else
    fail "$start start: the answers differ from those of 0.1.0"
  fi
  stop_server
done
[ -f "$E2E_TMP/data/meta" ] && pass "the boot counter moved to data/meta" ||
  fail "no data/meta after the first start"
[ ! -e "$E2E_TMP/data/meta.rec" ] && pass "meta.rec is gone" || fail "meta.rec is still there"
finish
