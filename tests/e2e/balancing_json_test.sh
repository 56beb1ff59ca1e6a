#!/usr/bin/env bash
# picker's own strategies and slow start over JSON with `buf curl`: written
# in lowerCamel with durations in milliseconds, answered with every default
# filled in, a bad value refused naming its field, and a Release carrying an
# ORCA load report.
source "$(dirname "$0")/lib.sh"
require_buf
require_python
start_server
admin="http://$ADMIN_ADDR/picker.v1.Admin"
data="http://$DATA_ADDR/picker.v1.Picker"

create() { bufc --data "{\"upstream\":{\"name\":\"$1\",\"loadBalancer\":$2}}" "$admin/CreateUpstream"; }
lb_of() { bufc --data "{\"name\":\"$1\"}" "$admin/GetUpstream" | json_get 'd["loadBalancer"]'; }
same() {  # same WHAT GOT WANT: compares two JSON documents
  if "$PYTHON" -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$2" "$3"; then
    pass "$1"
  else
    fail "$1: got $2, want $3"
  fi
}

create ewma '{"peakEwma":{"decayTime":"0.250s"}}' >/dev/null || die "CreateUpstream ewma"
same "peakEwma: defaults filled, milliseconds kept" "$(lb_of ewma)" \
  '{"peakEwma":{"choiceCount":2,"decayTime":"0.250s","failurePenalty":"1s"}}'

create wrr '{"weightedRoundRobin":{"blackoutPeriod":"0s","weightUpdatePeriod":"0.100s"}}' >/dev/null ||
  die "CreateUpstream wrr"
same "weightedRoundRobin: A58's defaults, an explicit 0s blackout kept" "$(lb_of wrr)" \
  '{"weightedRoundRobin":{"blackoutPeriod":"0s","weightExpirationPeriod":"180s","weightUpdatePeriod":"0.100s","errorUtilizationPenalty":1}}'

create ss '{"leastRequest":{"slowStartConfig":{"slowStartWindow":"0.500s"}}}' >/dev/null ||
  die "CreateUpstream ss"
same "leastRequest.slowStartConfig: defaults filled" "$(lb_of ss)" \
  '{"leastRequest":{"choiceCount":2,"activeRequestBias":1,"slowStartConfig":{"slowStartWindow":"0.500s","aggression":1,"minWeightPercent":10}}}'

out=$(create bad '{"roundRobin":{"slowStartConfig":{"slowStartWindow":"1s","aggression":-1}}}' 2>&1)
rc=$?
[ $rc -eq 24 ] && grep -q "upstream.load_balancer.round_robin.slow_start_config.aggression" <<<"$out" &&
  pass "a bad aggression is INVALID_ARGUMENT naming the field" ||
  fail "a bad aggression: exit $rc, $out"

bufc --data '{"upstream":"wrr","target":{"address":"10.0.0.1:80"}}' "$admin/PutTarget" >/dev/null ||
  die "PutTarget"
lease=$(bufc --data '{"upstream":"wrr"}' "$data/Pick" | json_get 'd["leaseId"]')
state=$(bufc --data "{\"upstream\":\"wrr\",\"leaseId\":\"$lease\",\"latency\":\"0.003s\",\"loadReport\":{\"cpuUtilization\":0.4,\"rpsFractional\":120,\"eps\":1}}" \
  "$data/Release" | json_get 'd["state"]')
[ "$state" = RELEASED ] && pass "Release with a loadReport" || fail "Release with a loadReport: $state"

stop_server
finish
